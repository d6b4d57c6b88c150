"""Human-facing summaries of a run: per-stage tables (rich) and percentile summaries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from agentflow.runtime.records import StageRecord

__all__ = ["percentile", "stage_summary", "stage_summary_table", "stage_table"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of `values`, or None when empty."""
    return float(np.percentile(values, q)) if values else None


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def stage_table(records: Sequence[StageRecord]) -> Table:
    """One row per stage call: measured TTFT/TPOT against budget, verdict, tokens."""
    table = Table(title="Stages", title_justify="left")
    for column in ("program", "stage", "iter", "TTFT ms (budget)", "TPOT ms (budget)", "SLO"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    table.add_column("tokens", justify="right")
    for rec in records:
        verdict = "[green]met[/]" if rec.slo_met else "[red]missed[/]"
        if rec.status != "finished":
            verdict = f"[red]{rec.status}[/]"
        table.add_row(
            rec.program_id,
            rec.stage,
            str(rec.iteration),
            f"{_fmt_ms(rec.ttft_ms)} ({rec.ttft_budget_ms:,.0f})",
            f"{rec.tpot_ms:,.1f} ({rec.tpot_budget_ms:,.0f})"
            if rec.tpot_ms is not None
            else f"- ({rec.tpot_budget_ms:,.0f})",
            verdict,
            str(rec.output_tokens),
        )
    return table


def stage_summary(records: Sequence[StageRecord]) -> dict[str, dict[str, Any]]:
    """Per stage: calls, attainment, TTFT/TPOT p50/p99 (ms)."""
    by_stage: dict[str, list[StageRecord]] = defaultdict(list)
    for rec in records:
        by_stage[rec.stage].append(rec)
    summary: dict[str, dict[str, Any]] = {}
    for name, recs in by_stage.items():
        ttfts = [r.ttft_ms for r in recs if r.ttft_ms is not None]
        tpots = [r.tpot_ms for r in recs if r.tpot_ms is not None]
        summary[name] = {
            "calls": len(recs),
            "attainment": sum(r.slo_met for r in recs) / len(recs),
            "ttft_p50_ms": percentile(ttfts, 50),
            "ttft_p99_ms": percentile(ttfts, 99),
            "tpot_p50_ms": percentile(tpots, 50),
            "tpot_p99_ms": percentile(tpots, 99),
        }
    return summary


def stage_summary_table(records: Sequence[StageRecord]) -> Table:
    """One row per stage, aggregated over all calls."""
    table = Table(title="Stages (all instances)", title_justify="left")
    for column in ("stage", "calls", "attainment", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, row in stage_summary(records).items():
        table.add_row(
            name,
            str(row["calls"]),
            f"{row['attainment']:.0%}",
            _fmt_ms(row["ttft_p50_ms"]),
            _fmt_ms(row["ttft_p99_ms"]),
            _fmt_ms(row["tpot_p50_ms"]),
            _fmt_ms(row["tpot_p99_ms"]),
        )
    return table

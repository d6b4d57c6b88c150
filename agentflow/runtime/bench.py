"""Drive many program instances at a Poisson arrival rate and summarise their SLOs."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np

from agentflow.metrics.report import percentile, stage_summary
from agentflow.program.agent import Agent
from agentflow.runtime.records import ProgramResult, ProgramStatus
from agentflow.runtime.runtime import Runtime

__all__ = ["poisson_offsets_s", "run_load", "summarize"]


def poisson_offsets_s(rate_rps: float, duration_s: float, *, seed: int = 0) -> list[float]:
    """Arrival offsets of a Poisson process at `rate_rps` over `duration_s` (at least one)."""
    rng = random.Random(seed)
    offsets, now = [0.0], 0.0
    while True:
        now += rng.expovariate(rate_rps)
        if now >= duration_s:
            return offsets
        offsets.append(now)


async def run_load(
    runtime: Runtime,
    agent: Agent,
    inputs: Sequence[dict[str, Any]],
    offsets_s: Sequence[float],
) -> list[ProgramResult]:
    """Start instance i at `offsets_s[i]` with `inputs[i % len(inputs)]`; wait for all."""
    results: list[ProgramResult] = []
    started_s = time.monotonic()

    async def launch(index: int, offset_s: float) -> None:
        await anyio.sleep(max(0.0, started_s + offset_s - time.monotonic()))
        results.append(await runtime.run_one(agent, dict(inputs[index % len(inputs)])))

    async with anyio.create_task_group() as group:
        for index, offset_s in enumerate(offsets_s):
            group.start_soon(launch, index, offset_s)
    return sorted(results, key=lambda r: int(r.program_id.rsplit("-", 1)[-1]))


def summarize(results: Sequence[ProgramResult]) -> dict[str, Any]:
    """The `summary` object of `agentflow bench --json` (see issue 5's contract)."""
    records = [rec for r in results for rec in r.stages]
    tool_ms = [t.latency_ms for r in results for t in r.tools]
    latencies = [r.latency_ms for r in results]
    statuses = [str(r.status) for r in results]
    return {
        "programs": len(results),
        "finished": statuses.count(str(ProgramStatus.FINISHED)),
        "status_counts": {s: statuses.count(s) for s in sorted(set(statuses))},
        "attainment": float(np.mean([rec.slo_met for rec in records])) if records else 0.0,
        "program_attainment": float(
            np.mean([bool(r.stages) and all(s.slo_met for s in r.stages) for r in results])
        )
        if results
        else 0.0,
        "per_stage": stage_summary(records),
        "tool_calls": len(tool_ms),
        "tool_latency_p50_ms": percentile(tool_ms, 50),
        "tool_latency_p99_ms": percentile(tool_ms, 99),
        "e2e_p50_ms": percentile(latencies, 50),
        "e2e_p99_ms": percentile(latencies, 99),
    }

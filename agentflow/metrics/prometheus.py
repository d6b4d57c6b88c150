"""Prometheus metrics of a serving process: per-stage SLO attainment, latencies, lanes.

Each `ServingMetrics` owns its registry (not the process-wide default), so two servers in one
process, or many tests, never collide. Labels stay low-cardinality: stage name and SLO tier
come from program code, never from request ids or user text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agentflow.runtime.records import ProgramResult, StageRecord

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

# TTFT spans a 10 ms chat turn on a GPU to a multi-second prompt on a CPU.
_TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TPOT_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2)


class ServingMetrics:
    """Counters and histograms fed with finished stage records and program results."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        stage_labels = ("stage", "tier")
        self.requests = Counter(
            "agentflow_requests",
            "LLM requests that reached a terminal state, by lane and status "
            "(lane: admitted, best_effort, unplanned (an engine without admission control) or"
            " none (refused before the engine); status: finished, failed or rejected).",
            (*stage_labels, "lane", "status"),
            registry=self.registry,
        )
        self.slo_met = Counter(
            "agentflow_slo_met",
            "Requests that met both TTFT and TPOT budgets (SLOs-Serve's rule).",
            stage_labels,
            registry=self.registry,
        )
        self.output_tokens = Counter(
            "agentflow_output_tokens",
            "Output tokens generated.",
            stage_labels,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "agentflow_ttft_seconds",
            "Time to first token, measured at the client.",
            stage_labels,
            buckets=_TTFT_BUCKETS_S,
            registry=self.registry,
        )
        self.tpot = Histogram(
            "agentflow_tpot_seconds",
            "Mean time per output token after the first, per request.",
            stage_labels,
            buckets=_TPOT_BUCKETS_S,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "agentflow_requests_in_flight",
            "LLM requests submitted and not yet in a terminal state.",
            registry=self.registry,
        )
        self.programs = Counter(
            "agentflow_programs",
            "Program instances that ended, by agent and terminal status.",
            ("agent", "status"),
            registry=self.registry,
        )

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Count one request as in flight for the duration of the block."""
        self.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight.dec()

    def observe_stage(self, record: StageRecord) -> None:
        """Account one stage call that reached a terminal state."""
        labels = {"stage": record.stage, "tier": record.tier}
        lane = record.lane or "unplanned"
        self.requests.labels(**labels, lane=lane, status=record.status).inc()
        self.output_tokens.labels(**labels).inc(record.output_tokens)
        if record.slo_met:
            self.slo_met.labels(**labels).inc()
        if record.ttft_ms is not None:
            self.ttft.labels(**labels).observe(record.ttft_ms / 1e3)
        if record.tpot_ms is not None:
            self.tpot.labels(**labels).observe(record.tpot_ms / 1e3)

    def observe_rejection(self, stage: str, tier: str) -> None:
        """Account a request refused before it reached the engine (bad input)."""
        self.requests.labels(stage=stage, tier=tier, lane="none", status="rejected").inc()

    def observe_program(self, result: ProgramResult) -> None:
        """Account one program instance and every stage call it made."""
        self.programs.labels(agent=result.agent, status=str(result.status)).inc()
        for record in result.stages:
            self.observe_stage(record)

    def render(self) -> bytes:
        """The text exposition format, as `/metrics` serves it."""
        return bytes(generate_latest(self.registry))

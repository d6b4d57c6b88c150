"""OpenTelemetry traces of program runs: a span per program instance, a child per stage call.

`ProgramTracer` is a runtime observer (`Runtime(..., observers=[tracer])`): it turns a run's
events into spans as they happen. A stage span carries the stage's SLO and what was measured
(TTFT, TPOT, lane, verdict), so a trace viewer shows which stage of which program missed its
budget and why. `otlp_tracer` exports to an OTLP collector, as `vllm serve
--otlp-traces-endpoint` does.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from agentflow.runtime.events import (
    ProgramEvent,
    ProgramFinished,
    ProgramStarted,
    StageDelta,
    StageFinished,
    StageStarted,
    ToolCalled,
)
from agentflow.runtime.records import ProgramStatus

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["ProgramTracer", "otlp_tracer_provider"]

_SCOPE = "agentflow"


class ProgramTracer:
    """Turns program events into spans on `tracer` (an OpenTelemetry `Tracer`).

    Spans: `program <agent>` (attributes `agentflow.program_id`, `agentflow.agent`, status),
    children `stage <name>` (budgets, prompt and output tokens, measured TTFT/TPOT, lane,
    `agentflow.slo_met`; a `first_token` span event) and `tool <name>` (timed back from its
    measured latency). A failed stage or program sets the span's status to error.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._programs: dict[str, Span] = {}
        self._stages: dict[str, Span] = {}
        self._first_token_seen: set[str] = set()

    def __call__(self, event: ProgramEvent) -> None:
        """Observe one event (the runtime calls this)."""
        if isinstance(event, ProgramStarted):
            self._start_program(event)
        elif isinstance(event, StageStarted):
            self._start_stage(event)
        elif isinstance(event, StageDelta):
            span = self._stages.get(event.request_id)
            if span is not None and event.request_id not in self._first_token_seen:
                span.add_event("first_token")
                self._first_token_seen.add(event.request_id)
        elif isinstance(event, StageFinished):
            self._end_stage(event)
        elif isinstance(event, ToolCalled):
            self._tool(event)
        else:
            self._end_program(event)

    def _start_program(self, event: ProgramStarted) -> None:
        attributes: dict[str, Any] = {
            "agentflow.program_id": event.program_id,
            "agentflow.agent": event.agent,
        }
        if event.deadline_ms is not None:
            attributes["agentflow.deadline_ms"] = event.deadline_ms
        span = self.tracer.start_span(f"program {event.agent}", attributes=attributes)
        self._programs[event.program_id] = span

    def _start_stage(self, event: StageStarted) -> None:
        span = self.tracer.start_span(
            f"stage {event.stage}",
            context=self._parent(event.program_id),
            attributes={
                "agentflow.program_id": event.program_id,
                "agentflow.stage": event.stage,
                "agentflow.iteration": event.iteration,
                "agentflow.request_id": event.request_id,
                "agentflow.tier": event.tier,
                "agentflow.ttft_budget_ms": event.ttft_budget_ms,
                "agentflow.tpot_budget_ms": event.tpot_budget_ms,
                "agentflow.prompt_tokens": event.prompt_tokens,
            },
        )
        self._stages[event.request_id] = span

    def _end_stage(self, event: StageFinished) -> None:
        from opentelemetry.trace import Status, StatusCode

        record = event.record
        span = self._stages.pop(record.request_id, None)
        self._first_token_seen.discard(record.request_id)
        if span is None:
            return
        span.set_attribute("agentflow.output_tokens", record.output_tokens)
        if record.lane is not None:
            span.set_attribute("agentflow.lane", record.lane)
        span.set_attribute("agentflow.slo_met", record.slo_met)
        if record.ttft_ms is not None:
            span.set_attribute("agentflow.ttft_ms", record.ttft_ms)
        if record.tpot_ms is not None:
            span.set_attribute("agentflow.tpot_ms", record.tpot_ms)
        if record.finish_reason is not None:
            span.set_attribute("agentflow.finish_reason", record.finish_reason)
        if record.status != "finished":
            span.set_status(Status(StatusCode.ERROR, record.error))
        span.end()

    def _tool(self, event: ToolCalled) -> None:
        from opentelemetry.trace import Status, StatusCode

        call = event.record
        end_ns = time.time_ns()
        span = self.tracer.start_span(
            f"tool {call.tool}",
            context=self._parent(call.program_id),
            start_time=end_ns - int(call.latency_ms * 1e6),
            attributes={
                "agentflow.program_id": call.program_id,
                "agentflow.tool": call.tool,
                "agentflow.iteration": call.iteration,
                "agentflow.attempts": call.attempts,
                "agentflow.ok": call.ok,
            },
        )
        if not call.ok:
            span.set_status(Status(StatusCode.ERROR, call.error))
        span.end(end_time=end_ns)

    def _end_program(self, event: ProgramFinished) -> None:
        from opentelemetry.trace import Status, StatusCode

        result = event.result
        span = self._programs.pop(result.program_id, None)
        if span is None:
            return
        span.set_attribute("agentflow.status", str(result.status))
        span.set_attribute("agentflow.stage_calls", len(result.stages))
        span.set_attribute("agentflow.stages_met", sum(r.slo_met for r in result.stages))
        if result.status != ProgramStatus.FINISHED:
            span.set_status(Status(StatusCode.ERROR, result.error))
        span.end()

    def _parent(self, program_id: str) -> Any:
        from opentelemetry import trace

        span = self._programs.get(program_id)
        return trace.set_span_in_context(span) if span is not None else None


def otlp_tracer_provider(endpoint: str, *, service_name: str = "agentflow") -> TracerProvider:
    """A tracer provider exporting in batches to the OTLP collector at `endpoint`.

    gRPC by default (as vLLM's `--otlp-traces-endpoint`); `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=
    http/protobuf` selects OTLP over HTTP (then `endpoint` is the full URL, e.g.
    `http://localhost:4318/v1/traces`). Call `shutdown()` on it at exit to flush.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        exporter = HTTPSpanExporter(endpoint=endpoint)
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL={protocol!r}: use 'grpc' or 'http/protobuf'"
        )
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider

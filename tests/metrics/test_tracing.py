"""OpenTelemetry spans of program runs: in memory, and over OTLP to a loopback collector."""

import os
import sys
from pathlib import Path

import anyio
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentflow.metrics.tracing import ProgramTracer
from agentflow.runtime import Runtime
from agentflow.runtime.events import ToolCalled
from agentflow.runtime.records import ToolRecord
from tests.fakes import FakeEngine
from tests.programs import reasoner
from tools.serving import running_app

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


def _tracer():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return ProgramTracer(provider.get_tracer("test")), exporter


async def test_a_run_is_a_program_span_with_one_child_span_per_stage_call():
    tracer, exporter = _tracer()
    runtime = Runtime(FakeEngine(token_delay_s=0.001, lane="admitted"), observers=[tracer])
    await runtime.run_one(reasoner, {"question": "why"}, program_id="p0")

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"program reasoner", "stage think", "stage answer"}
    program, think_span = spans["program reasoner"], spans["stage think"]
    assert think_span.parent.span_id == program.context.span_id
    assert spans["stage answer"].parent.span_id == program.context.span_id
    assert program.attributes["agentflow.status"] == "finished"
    assert program.attributes["agentflow.stages_met"] == 2
    attrs = think_span.attributes
    assert (attrs["agentflow.tier"], attrs["agentflow.ttft_budget_ms"]) == ("tight", 300)
    assert attrs["agentflow.output_tokens"] == 3 and attrs["agentflow.lane"] == "admitted"
    assert attrs["agentflow.slo_met"] is True and attrs["agentflow.ttft_ms"] > 0
    assert [event.name for event in think_span.events] == ["first_token"]
    assert think_span.start_time >= program.start_time and think_span.end_time <= program.end_time


async def test_a_failed_stage_marks_its_span_and_its_programs_span_as_errors():
    tracer, exporter = _tracer()
    runtime = Runtime(FakeEngine(fail_stages=frozenset({"answer"})), observers=[tracer])
    await runtime.run_one(reasoner, {"question": "why"})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["stage think"].status.status_code is StatusCode.UNSET
    assert spans["stage answer"].status.status_code is StatusCode.ERROR
    assert "injected failure" in spans["stage answer"].status.description
    assert spans["program reasoner"].status.status_code is StatusCode.ERROR


def test_a_tool_call_span_lasts_its_measured_latency():
    tracer, exporter = _tracer()
    record = ToolRecord("p0", "search", 0, ok=False, latency_ms=250.0, attempts=2, error="timeout")
    tracer(ToolCalled(record))
    (span,) = exporter.get_finished_spans()
    assert span.name == "tool search"
    assert (span.end_time - span.start_time) == pytest.approx(250e6, rel=1e-6)
    assert span.attributes["agentflow.attempts"] == 2
    assert span.status.status_code is StatusCode.ERROR


async def test_agentflow_run_exports_its_spans_over_otlp_to_a_collector():
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(b"", media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])
    async with running_app(collector) as url:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
        command = [
            sys.executable, "-m", "agentflow.cli", "run", "examples/reasoning.py",
            "--backend", "sim", "--otlp-traces-endpoint", f"{url}/v1/traces",
        ]  # fmt: skip
        done = await anyio.run_process(command, cwd=REPO, env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    spans = [
        span
        for message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for span in spans)
    assert names == ["program reasoner", "stage answer", "stage think"]
    program = next(span for span in spans if span.name == "program reasoner")
    assert all(s.parent_span_id == program.span_id for s in spans if s.name.startswith("stage"))
    service = received[0].resource_spans[0].resource.attributes
    assert {a.key: a.value.string_value for a in service if a.key == "service.name"} == {
        "service.name": "agentflow"
    }


def test_an_unknown_otlp_protocol_exits_2_before_the_engine_starts(monkeypatch, capsys):
    from agentflow.cli import main

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon")
    program = str(REPO / "examples" / "reasoning.py")
    argv = ["run", program, "--backend", "sim", "--otlp-traces-endpoint", "http://127.0.0.1:9"]
    assert main(argv) == 2
    assert "'carrier-pigeon': use 'grpc' or 'http/protobuf'" in capsys.readouterr().err


async def test_an_openai_completion_served_with_observers_is_a_root_stage_span():
    from agentflow.metrics.prometheus import ServingMetrics
    from agentflow.serving import CompletionService, ServeDefaults
    from agentflow.serving.schema import CompletionRequest

    tracer, exporter = _tracer()
    service = CompletionService(
        FakeEngine(),
        model_name="fake",
        defaults=ServeDefaults(),
        metrics=ServingMetrics(),
        observers=[tracer],
    )
    body = CompletionRequest(prompt="hello there", max_tokens=3, tpot_ms=80, stage="probe")
    reply = await service.respond(service.prepare(body))
    (span,) = exporter.get_finished_spans()
    assert span.name == "stage probe" and span.parent is None
    assert span.attributes["agentflow.request_id"] == reply["id"]
    assert span.attributes["agentflow.tpot_budget_ms"] == 80
    assert span.attributes["agentflow.output_tokens"] == reply["usage"]["completion_tokens"] == 3

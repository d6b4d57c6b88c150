"""Streaming a program run: every stage's start, output and record, in order, then the end."""

import anyio
import pytest

from agentflow.runtime import ProgramStatus, Runtime
from agentflow.runtime.events import (
    ProgramFinished,
    StageDelta,
    StageFinished,
    StageStarted,
)
from tests.fakes import FakeEngine
from tests.programs import reasoner

pytestmark = pytest.mark.anyio


async def test_a_streamed_run_reports_each_stage_as_it_happens_and_ends_with_the_result():
    runtime = Runtime(FakeEngine())
    async with runtime.stream(reasoner, {"question": "why"}, program_id="p0") as events:
        seen = [event async for event in events]
    assert seen[0].to_json() == {
        "program_id": "p0",
        "agent": "reasoner",
        "inputs": {"question": "why"},
        "deadline_ms": None,
    }

    kinds = [event.kind for event in seen]
    assert kinds == [
        "program_started",
        "stage_started", *["stage_delta"] * 3, "stage_finished",
        "stage_started", *["stage_delta"] * 2, "stage_finished",
        "program_finished",
    ]  # fmt: skip
    started = [e for e in seen if isinstance(e, StageStarted)]
    assert [(e.stage, e.tier, e.ttft_budget_ms) for e in started] == [
        ("think", "tight", 300),
        ("answer", "loose", 900),
    ]
    think_text = "".join(e.text for e in seen if isinstance(e, StageDelta) and e.stage == "think")
    assert think_text == "<think0><think1><think2>"
    finished = [e.record for e in seen if isinstance(e, StageFinished)]
    assert [(r.stage, r.status, r.output_tokens) for r in finished] == [
        ("think", "finished", 3),
        ("answer", "finished", 2),
    ]
    (end,) = [e for e in seen if isinstance(e, ProgramFinished)]
    assert end.result.status == ProgramStatus.FINISHED
    assert end.result.output == "<answer0><answer1>"
    assert end.to_json()["program_id"] == "p0"


async def test_a_failed_stage_still_reports_its_record_and_the_programs_failure():
    runtime = Runtime(FakeEngine(fail_stages=frozenset({"answer"})))
    async with runtime.stream(reasoner, {"question": "why"}) as events:
        seen = [event async for event in events]
    records = [e.record for e in seen if isinstance(e, StageFinished)]
    assert [(r.stage, r.status) for r in records] == [("think", "finished"), ("answer", "failed")]
    assert seen[-1].result.status == ProgramStatus.FAILED
    assert "injected failure" in seen[-1].result.error


async def test_leaving_a_stream_early_cancels_the_run_and_aborts_its_request():
    engine = FakeEngine(token_delay_s=1.0)  # three seconds for the first stage alone
    observed = []
    runtime = Runtime(engine, observers=[observed.append])
    with anyio.fail_after(2):
        async with runtime.stream(reasoner, {"question": "why"}) as events:
            async for event in events:
                if isinstance(event, StageStarted):
                    break
    assert [r.stage for r in engine.requests] == ["think"]
    assert engine.aborted == [engine.requests[0].request_id]
    # Observers (tracing) still see the run end, with the reason, and the stage's record.
    assert (observed[-1].kind, observed[-1].result.error) == ("program_finished", "cancelled")
    assert observed[-2].kind == "stage_finished" and observed[-2].record.status == "failed"


async def test_an_event_sink_sees_the_same_run_without_streaming():
    seen = []
    result = await Runtime(FakeEngine()).run_one(
        reasoner, {"question": "why"}, on_event=seen.append
    )
    assert seen[-1].result is result
    assert sum(isinstance(e, StageFinished) for e in seen) == len(result.stages) == 2


async def test_a_sink_that_raises_fails_its_program_and_aborts_the_request_at_once():
    engine = FakeEngine(token_delay_s=0.01)

    def fragile(event):
        if isinstance(event, StageDelta):
            raise ValueError("sink is full")

    result = await Runtime(engine).run_one(reasoner, {"question": "why"}, on_event=fragile)
    assert result.status == ProgramStatus.FAILED
    assert "sink is full" in result.error
    assert engine.aborted == [engine.requests[0].request_id]
    assert result.stages[0].status == "failed"


async def test_runtime_observers_see_every_run_before_the_callers_sink():
    order = []
    runtime = Runtime(FakeEngine(), observers=[lambda e: order.append(("observer", e.kind))])
    await runtime.run_one(
        reasoner, {"question": "a"}, on_event=lambda e: order.append(("run", e.kind))
    )
    await runtime.run_many(reasoner, [{"question": "b"}, {"question": "c"}])
    observed = [kind for who, kind in order if who == "observer"]
    assert observed.count("program_started") == observed.count("program_finished") == 3
    assert order[:2] == [("observer", "program_started"), ("run", "program_started")]


async def test_an_observer_failing_at_a_runs_end_does_not_undo_the_run(caplog):
    def fails_at_the_end(event):
        if event.kind == "program_finished":
            raise RuntimeError("exporter down")

    runtime = Runtime(FakeEngine(), observers=[fails_at_the_end])
    results = await runtime.run_many(reasoner, [{"question": "a"}, {"question": "b"}])
    assert [r.status for r in results] == [ProgramStatus.FINISHED] * 2
    assert "event observer failed" in caplog.text

import importlib.util
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentflow.engine.interface import Engine, GenerationRequest
from agentflow.engine.sim import (
    FinishReason,
    Lane,
    PacedClock,
    SimEngine,
    SimEngineConfig,
    VirtualClock,
    get_profile,
)
from agentflow.errors import EngineError
from agentflow.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reasoning.py"
PROFILE = get_profile("opt-7b-a100")


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("example_reasoning", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _request(
    request_id: str = "r0", prompt: str = "one two three", max_tokens: int = 8
) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        prompt=prompt,
        max_tokens=max_tokens,
        ttft_ms=1000.0,
        tpot_ms=100.0,
        program_id="p",
        stage="s",
        tier="t",
    )


def test_sim_engine_satisfies_the_engine_protocol():
    engine = SimEngine(PROFILE)
    assert isinstance(engine, Engine)
    assert engine.count_prompt_tokens("a b  c\nd") == 4
    assert engine.isolated_prefill_ms(100) == pytest.approx(
        PROFILE.predictor().isolated_prefill_s(100) * 1e3
    )


@pytest.mark.anyio
async def test_stream_yields_every_token_and_a_final_delta():
    async with SimEngine(PROFILE, clock=VirtualClock()) as engine:
        deltas = [d async for d in engine.stream(_request(max_tokens=8))]
    assert sum(d.num_tokens for d in deltas) == 8
    assert deltas[-1].finished and deltas[-1].finish_reason == "length"
    assert not any(d.finished for d in deltas[:-1])
    assert {d.lane for d in deltas} == {"admitted"}
    (outcome,) = engine.outcomes
    assert len(outcome.token_times_s) == 8 and outcome.slo_met


@pytest.mark.anyio
async def test_stream_before_start_is_an_engine_error():
    engine = SimEngine(PROFILE)
    with pytest.raises(EngineError, match="not started"):
        async for _ in engine.stream(_request()):
            pass


@pytest.mark.anyio
async def test_runtime_runs_the_reasoning_example_on_the_virtual_clock():
    example = _load_example()
    clock = VirtualClock()
    async with SimEngine(PROFILE, clock=clock) as engine:
        runtime = Runtime(engine)
        inputs = [{"question": f"question number {i} about the sky"} for i in range(12)]
        results = await runtime.run_many(example.reasoner, inputs, concurrency=12)
    assert [r.status.value for r in results] == ["finished"] * 12
    for result in results:
        assert [s.stage for s in result.stages] == ["think", "answer"]
        assert [s.output_tokens for s in result.stages] == [128, 96]
        assert all(s.status == "finished" for s in result.stages)
    assert len(engine.outcomes) == 24
    assert clock.now_s() > 128 * 0.02  # simulated seconds passed, in no wall time
    assert all(o.finish_reason is FinishReason.LENGTH for o in engine.outcomes)
    lane_by_id = {o.request_id: o.lane for o in engine.outcomes}
    for stage in (s for r in results for s in r.stages):
        assert stage.best_effort == (lane_by_id[stage.request_id] is Lane.BEST_EFFORT)


@pytest.mark.anyio
async def test_paced_clock_makes_runtime_measurements_the_simulated_ones():
    example = _load_example()
    # 4x faster than real time: the runtime reads the engine's clock, so it measures simulated
    # time, not wall time.
    speedup = 4.0
    async with SimEngine(PROFILE, SimEngineConfig(policy="vllm"), clock=PacedClock(speedup)) as e:
        result = await Runtime(e).run_one(example.reasoner, {"question": "why is the sky blue"})
    think = result.stages[0]
    assert think.ttft_ms is not None and think.tpot_ms is not None
    outcome = next(o for o in e.outcomes if o.request_id == think.request_id)
    simulated_ttft_ms = (outcome.token_times_s[0] - outcome.arrival_s) * 1e3
    simulated_tpot_ms = (outcome.token_times_s[-1] - outcome.token_times_s[0]) / 127 * 1e3
    assert think.ttft_ms == pytest.approx(simulated_ttft_ms, abs=15.0)
    assert think.tpot_ms == pytest.approx(simulated_tpot_ms, rel=0.1)


@pytest.mark.anyio
async def test_cancelled_consumer_aborts_the_request_in_the_engine():
    async with SimEngine(PROFILE, clock=VirtualClock()) as engine:
        stream: Any = engine.stream(_request(max_tokens=500))
        first = await stream.__anext__()
        assert first.num_tokens >= 1
        await stream.aclose()
        # the engine is free again: a new request runs to completion
        deltas = [d async for d in engine.stream(_request("r1", max_tokens=3))]
    assert deltas[-1].finished
    reasons = {o.request_id: o.finish_reason for o in engine.outcomes}
    assert reasons == {"r0": FinishReason.ABORTED, "r1": FinishReason.LENGTH}


@pytest.mark.anyio
async def test_virtual_clock_orders_sleepers_and_jumps_time():
    clock = VirtualClock()
    woke = []

    async def sleeper(name, delay_s):
        await clock.sleep(delay_s)
        woke.append((name, clock.now_s()))

    async with anyio.create_task_group() as group:
        for name, delay_s in (("b", 2.0), ("a", 1.0), ("c", 30.0)):
            group.start_soon(sleeper, name, delay_s)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 30.0)]

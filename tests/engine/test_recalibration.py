"""Integration: the scheduler inside a real vLLM CPU engine learns the engine's real speed when
its step-time profile is far off (fitted on another machine, or under other load)."""

import json
import math
import statistics

import pytest

import agentflow as af
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.planner import AffinePiece, StepTimePredictor
from agentflow.runtime import ProgramStatus, Runtime

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]

TOO_FAST = 0.05
"""The profile claims the engine is 20x faster than the SmolLM2 CPU profile."""


@af.stage(ttft_ms=5000, tpot_ms=500, max_tokens=24)
def chat(question: str) -> str:
    return f"Answer briefly: {question}"


@af.agent
async def asker(ctx: af.Context, question: str) -> str:
    return await ctx.run(chat, question)


def _too_fast_profile() -> StepTimePredictor:
    pieces = StepTimePredictor.default_cpu().pieces
    scaled = [
        AffinePiece(
            p.constant_s * TOO_FAST,
            p.per_prefill_token_s * TOO_FAST,
            p.per_decode_req_s * TOO_FAST,
            p.per_context_token_s * TOO_FAST,
            p.per_spec_token_s * TOO_FAST,
        )
        for p in pieces
    ]
    return StepTimePredictor(scaled)


def _median_log_error(steps, scale: float, bias_s: float) -> float:
    profile = _too_fast_profile()
    errors = []
    for s in steps:
        model_s = profile.step_time_s(
            s["num_prefill_tokens"],
            s["num_decode_reqs"],
            s["num_context_tokens"],
            s["num_spec_tokens"],
            s["num_prefill_pairs"],
        )
        errors.append(abs(math.log(s["step_ms"] / 1e3 / (scale * model_s + bias_s))))
    return statistics.median(errors)


async def test_a_profile_far_too_fast_is_recalibrated_from_the_measured_steps(
    tiny_model_dir, tmp_path
):
    trace_path = tmp_path / "scheduler.jsonl"
    config = VLLMEngineConfig(
        model=tiny_model_dir,
        load_format="dummy",
        kv_cache_mib=128,
        max_model_len=1024,
        trace_path=trace_path,
    )
    engine = VLLMEngine(config, predictor=_too_fast_profile())
    await engine.start()
    try:
        runtime = Runtime(engine, ignore_eos=True)
        results = await runtime.run_many(
            asker, [{"question": f"question {i}"} for i in range(8)], concurrency=4
        )
    finally:
        await engine.shutdown()
    assert all(r.status == ProgramStatus.FINISHED for r in results)

    events = [json.loads(line) for line in trace_path.read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"][-20:]
    recalibrated = [e for e in events if e["event"] == "recalibrated"]
    assert len(steps) == 20
    # The profile as given is off by a large factor on these steps ...
    assert _median_log_error(steps, 1.0, 0.0) > math.log(2.0)
    # ... and the scheduler's recalibrated model is close to what the engine measured.
    assert recalibrated, "the scheduler never reported a recalibration"
    latest = recalibrated[-1]
    print(
        recalibrated,
        [(s["num_prefill_tokens"], s["num_decode_reqs"], round(s["step_ms"], 2)) for s in steps],
        _median_log_error(steps, 1.0, 0.0),
    )
    assert latest["scale"] > 2.0
    assert _median_log_error(steps, latest["scale"], latest["bias_ms"] / 1e3) < math.log(1.5)

"""Stock vLLM with a step trace: what sim_vs_real checks the simulator's FCFS policy against."""

import json

import anyio
import pytest

from agentflow.engine.interface import GenerationRequest
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]


def _config(model_dir, **overrides):
    return VLLMEngineConfig(
        model=model_dir,
        load_format="dummy",
        kv_cache_mib=64,
        max_model_len=512,
        policy="fcfs",
        **overrides,
    )


def test_a_stock_policy_runs_vllms_own_scheduler_unless_a_trace_is_asked_for(tiny_model_dir):
    assert VLLMEngine(_config(tiny_model_dir)).scheduler_cls is None
    traced = VLLMEngine(_config(tiny_model_dir, trace_path=tiny_model_dir / "t.jsonl"))
    assert traced.scheduler_cls == "agentflow.engine.vllm.scheduler.TracedScheduler"


async def test_the_traced_stock_scheduler_times_every_step_and_decides_nothing(
    tiny_model_dir, tmp_path
):
    trace = tmp_path / "steps.jsonl"
    prompts = {f"r{i}": " ".join([word] * (20 + 15 * i)) for i, word in enumerate("abc")}
    max_tokens = 5
    async with VLLMEngine(_config(tiny_model_dir, trace_path=trace, warmup=False)) as engine:
        trace.write_text("")  # start-up steps are not this test's
        prompt_tokens = {
            rid: engine.count_prompt_tokens(p, use_chat_template=False)
            for rid, p in prompts.items()
        }

        async def serve(rid: str) -> int:
            request = GenerationRequest.unconstrained(rid, prompts[rid], max_tokens, label="t")
            return len([chunk async for chunk in engine.stream(request)])

        async with anyio.create_task_group() as group:
            for rid in prompts:
                group.start_soon(serve, rid)

    events = [json.loads(line) for line in trace.read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    # Only steps: the planner's events (add, plan, shed) never appear.
    assert {e["event"] for e in events} == {"step"}
    assert all(step["step_ms"] > 0 for step in steps)
    # Every prompt token was prefilled once and every later token decoded in its own step.
    assert sum(step["num_prefill_tokens"] for step in steps) == sum(prompt_tokens.values())
    assert sum(step["num_decode_reqs"] for step in steps) == len(prompts) * (max_tokens - 1)

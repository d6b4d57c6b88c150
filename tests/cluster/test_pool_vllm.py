"""Two real vLLM CPU replicas (tiny random Llama, small KV) behind the pool, on local Ray."""

import contextlib

import psutil
import pytest
import ray

import agentflow as af
from agentflow.cluster import Pool, PoolConfig, VLLMSpec
from agentflow.engine.vllm import VLLMEngineConfig
from agentflow.models import build_tiny_model
from agentflow.runtime import ProgramStatus, Runtime

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]


@af.stage(ttft_ms=3000, tpot_ms=300, max_tokens=8, tier="tight")
def draft(topic: str) -> str:
    return f"Write a short note about {topic}."


@af.stage(ttft="8x", tpot_ms=400, max_tokens=6, tier="loose")
def polish(topic: str, draft: str) -> str:
    return f"Topic: {topic}\nDraft: {draft}\nPolish it:"


@af.agent
async def writer(ctx: af.Context, topic: str) -> dict:
    text = await ctx.run(draft, topic)
    return {"draft": text, "final": await ctx.run(polish, topic, text)}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-cluster"))


async def test_two_vllm_replicas_serve_programs_and_their_engines_die_with_them(
    ray_cluster, tiny_model
):
    config = VLLMEngineConfig(
        model=tiny_model, load_format="dummy", kv_cache_mib=64, max_model_len=1024
    )
    pool = Pool(VLLMSpec(config), PoolConfig(num_replicas=2, num_cpus_per_replica=1))
    await pool.start()
    try:
        infos = [r.info for r in pool.replicas]
        assert all(i.engine_name == "vllm" and i.view is not None for i in infos)
        assert infos[0].view.config.kv_blocks_total > 0
        engine_pids = [_children(i.pid) for i in infos]
        assert all(engine_pids), "each replica's engine core runs in a child of its actor"
        prompt = "Count these tokens, please."
        for chat in (True, False):
            engine_count = await pool.replicas[0].actor.count_prompt_tokens.remote(prompt, chat)
            assert pool.count_prompt_tokens(prompt, use_chat_template=chat) == engine_count

        runtime = Runtime(pool, ignore_eos=True)
        results = await runtime.run_many(
            writer, [{"topic": f"topic {i}"} for i in range(6)], concurrency=6
        )
        stats = pool.stats()

        ray.kill(pool.replicas[1].actor)  # a crash, not a shutdown
        assert not _still_running(engine_pids[1]), "its engine processes die with the actor"
        after = await runtime.run_one(writer, {"topic": "after the crash"})
    finally:
        await pool.shutdown()

    assert [r.status for r in results] == [ProgramStatus.FINISHED] * 6, [r.error for r in results]
    records = [s for r in results for s in r.stages]
    assert [s.output_tokens for s in records] == [8, 6] * 6
    assert all(s.finish_reason == "length" for s in records)
    assert min(stats.router.num_routed_by_replica.values()) > 0, "both replicas served"
    assert stats.num_failed == 0
    assert after.status == ProgramStatus.FINISHED, "the pool goes on with one replica"
    assert not _still_running(engine_pids[0]), "shutdown stops the other engine"


def _children(pid):
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _still_running(pids, timeout_s=30):
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    return [p for p in alive if _is_running(p)]


def _is_running(process):
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

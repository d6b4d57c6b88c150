"""Integration: agentflow on the real vLLM CPU engine, with our scheduler in its engine core.

One engine (tiny random Llama, `load_format="dummy"`) serves every test here; the last test
shuts it down and checks that no engine process is left behind.
"""

import json

import psutil
import pytest

import agentflow as af
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.engine.vllm.dtype import cpu_has_native_bf16
from agentflow.errors import EngineError
from agentflow.runtime import ProgramStatus, Runtime
from tests.processes import engine_processes

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]


@af.stage(ttft_ms=2000, tpot_ms=200, max_tokens=12, tier="tight")
def think(question: str) -> str:
    return f"Think step by step about: {question}"


@af.stage(ttft="5x", tpot_ms=400, max_tokens=6, tier="loose")
def answer(question: str, think: str) -> str:
    return f"Question: {question}\nNotes: {think}\nAnswer:"


@af.agent
async def reasoner(ctx: af.Context, question: str) -> dict:
    notes = await ctx.run(think, question)
    return {"notes": notes, "answer": await ctx.run(answer, question, notes)}


class SpyEngine(VLLMEngine):
    """The real engine, remembering the requests it was given."""

    def __init__(self, config):
        super().__init__(config)
        self.requests = []

    def stream(self, request):
        self.requests.append(request)
        return super().stream(request)


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    return tmp_path_factory.mktemp("trace") / "scheduler.jsonl"


@pytest.fixture(scope="module")
async def engine(tiny_model_dir, trace_path):
    config = VLLMEngineConfig(
        model=tiny_model_dir,
        load_format="dummy",
        kv_cache_mib=128,
        max_model_len=1024,
        trace_path=trace_path,
    )
    spy = SpyEngine(config)
    await spy.start()
    yield spy
    await spy.shutdown()


def _trace(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_our_scheduler_class_runs_inside_the_engine_core(engine, trace_path):
    assert engine.scheduler_cls == "agentflow.engine.vllm.scheduler.SLOScheduler"
    events = _trace(trace_path)
    # Decode is planned to the bare TPOT on this noisy CPU engine (VLLMEngineConfig default),
    # and nothing is drafted unless speculation is asked for.
    start = next(e for e in events if e["event"] == "start")
    assert start["scheduler"] == "SLOScheduler"
    assert start["tpot_tolerance"] == 0.0 and start["max_drafts"] == 0
    # bfloat16 only where this CPU computes it natively; float32 (3.5x faster prefill) if not.
    assert start["dtype"] == ("bfloat16" if cpu_has_native_bf16() else "float32")


async def test_two_stage_program_chains_outputs_and_slo_metadata_reaches_the_scheduler(
    engine, trace_path
):
    runtime = Runtime(engine, ignore_eos=True)
    result = await runtime.run_one(reasoner, {"question": "why?"}, program_id="prog-7")

    assert result.status == ProgramStatus.FINISHED, result.error
    answer_req = engine.requests[-1]
    assert result.output["notes"] and result.output["notes"] in answer_req.prompt

    added = {e["stage"]: e for e in _trace(trace_path) if e["event"] == "add"}
    assert added["think"]["ttft_ms"] == 2000
    assert added["think"]["tpot_ms"] == 200
    assert added["think"]["program_id"] == "prog-7"
    assert added["think"]["tier"] == "tight"
    assert added["answer"]["tier"] == "loose"
    assert added["answer"]["ttft_ms"] == pytest.approx(answer_req.ttft_ms)


async def test_client_side_ttft_and_tpot_are_recorded_per_stage(engine):
    runtime = Runtime(engine, ignore_eos=True)
    result = await runtime.run_one(reasoner, {"question": "how?"})
    think_rec, answer_rec = result.stages
    assert think_rec.output_tokens == 12 and answer_rec.output_tokens == 6
    for rec in (think_rec, answer_rec):
        assert rec.status == "finished"
        assert rec.ttft_ms is not None and 0 < rec.ttft_ms < 10_000
        assert rec.tpot_ms is not None and 0 < rec.tpot_ms < 2_000
        assert len(rec.token_times_ms) == rec.output_tokens
        assert rec.token_times_ms == sorted(rec.token_times_ms)


async def test_concurrent_programs_all_finish_and_steps_are_traced(engine, trace_path):
    runtime = Runtime(engine, ignore_eos=True)
    results = await runtime.run_many(
        reasoner, [{"question": f"q{i}"} for i in range(6)], concurrency=6
    )
    assert all(r.status == ProgramStatus.FINISHED for r in results)
    steps = [e for e in _trace(trace_path) if e["event"] == "step"]
    assert any(s["num_decode_reqs"] >= 2 for s in steps), "decodes of concurrent programs batch"
    assert all(s["step_ms"] > 0 for s in steps)


@af.stage(ttft_ms=1, tpot_ms=200, max_tokens=4)
def rushed(question: str) -> str:
    return f"Answer at once, in one word, this long question: {question} " * 8


@af.agent
async def impatient(ctx: af.Context, question: str) -> str:
    return await ctx.run(rushed, question)


async def test_planner_serves_an_infeasible_request_best_effort_and_tells_the_caller(
    engine, trace_path
):
    runtime = Runtime(engine, ignore_eos=True)
    hopeless = await runtime.run_one(impatient, {"question": "why?"})
    feasible = await runtime.run_one(reasoner, {"question": "why?"})

    (rec,) = hopeless.stages
    assert hopeless.status == ProgramStatus.FINISHED  # not dropped: served from spare capacity
    assert rec.best_effort is True and rec.output_tokens == 4
    assert rec.slo_met is False  # best-effort counts as a miss
    assert [r.best_effort for r in feasible.stages] == [False, False]
    plans = [e for e in _trace(trace_path) if e["event"] == "plan"]
    assert any(rec.request_id in rid for p in plans for rid in p["best_effort"])


DOCUMENT = " ".join(f"line {i} of the shared document." for i in range(30))


@af.stage(ttft_ms=10_000, tpot_ms=200, max_tokens=4, use_chat_template=False)
def read(document: str) -> str:
    return document


@af.stage(ttft_ms=100, tpot_ms=200, max_tokens=4, use_chat_template=False)
def follow_up(document: str, read: str) -> str:
    return f"{document} In short:"  # extends the first prompt: its KV is cached


@af.agent
async def reader(ctx: af.Context, document: str) -> str:
    notes = await ctx.run(read, document)
    return await ctx.run(follow_up, document, notes)


async def test_a_follow_up_priced_with_its_cached_prefix_is_admitted(engine):
    # Priced as a whole new prompt (about 750 tokens), the follow-up's 100 ms TTFT is below
    # its predicted isolated prefill; the cached prefix leaves a few dozen tokens to compute.
    runtime = Runtime(engine, ignore_eos=True)
    full_prompt_tokens = engine.count_prompt_tokens(
        f"{DOCUMENT} In short:", use_chat_template=False
    )
    assert engine.isolated_prefill_ms(full_prompt_tokens) > 2 * 100
    result = await runtime.run_one(reader, {"document": DOCUMENT})
    assert result.status == ProgramStatus.FINISHED, result.error
    first, second = result.stages
    assert first.best_effort is False
    assert second.best_effort is False


async def test_the_started_engine_reports_the_kv_cache_it_allocated(engine, tiny_model_dir):
    # The pool's router plans admissions against this size.
    num_blocks, block_size = engine.kv_cache_shape
    assert block_size > 0 and num_blocks * block_size >= 1024  # one max-length sequence fits
    unstarted = VLLMEngine(VLLMEngineConfig(model=tiny_model_dir, load_format="dummy"))
    with pytest.raises(EngineError, match="not started"):
        _ = unstarted.kv_cache_shape


async def test_shutdown_leaves_no_engine_process(engine):
    children = engine_processes(psutil.Process())
    assert children, "the engine core runs in a child process"
    await engine.shutdown()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"engine processes left behind: {[p.cmdline() for p in alive]}"
    await engine.shutdown()  # idempotent

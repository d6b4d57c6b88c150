"""The runtime on a fake engine: requests carry SLOs, stages chain, every instance terminates."""

import anyio
import pytest

import agentflow as af
from agentflow.runtime import ProgramStatus, Runtime
from tests.fakes import FakeEngine

pytestmark = pytest.mark.anyio


@af.stage(ttft_ms=300, tpot_ms=40, max_tokens=3, tier="tight")
def think(question: str) -> str:
    return f"think: {question}"


@af.stage(ttft="3x", tpot_ms=150, max_tokens=2, tier="loose")
def answer(question: str, think: str) -> str:
    return f"q: {question} notes: {think}"


@af.agent
async def reasoner(ctx: af.Context, question: str) -> str:
    notes = await ctx.run(think, question)
    return await ctx.run(answer, question, notes)


async def test_each_stage_call_becomes_one_request_tagged_with_its_slo():
    engine = FakeEngine()
    result = await Runtime(engine).run_one(reasoner, {"question": "why"}, program_id="p0")

    assert result.status == ProgramStatus.FINISHED
    first, second = engine.requests
    assert (first.stage, first.ttft_ms, first.tpot_ms, first.tier) == ("think", 300, 40, "tight")
    assert first.program_id == second.program_id == "p0"
    # "3x" resolves against the engine's isolated prefill time of this prompt
    prompt_tokens = engine.count_prompt_tokens(second.prompt)
    assert second.ttft_ms == pytest.approx(3 * engine.isolated_prefill_ms(prompt_tokens))
    assert second.extra_args()["tier"] == "loose"


async def test_a_tpot_slowdown_resolves_against_the_engines_lone_decode_step():
    @af.stage(ttft_ms=300, tpot="4x", max_tokens=3)
    def relative(question: str) -> str:
        return f"think: {question}"

    @af.agent
    async def portable(ctx: af.Context, question: str) -> str:
        return await ctx.run(relative, question)

    engine = FakeEngine()
    result = await Runtime(engine).run_one(portable, {"question": "why"})

    (request,) = engine.requests
    # Its longest context: the whole prompt plus every token it may generate.
    context = engine.count_prompt_tokens(request.prompt) + 3
    assert request.tpot_ms == pytest.approx(4 * engine.lone_decode_ms(context))
    assert result.stages[0].tpot_budget_ms == pytest.approx(request.tpot_ms)


async def test_second_stage_sees_the_first_stage_output():
    engine = FakeEngine()
    result = await Runtime(engine).run_one(reasoner, {"question": "why"})
    assert "<think0><think1><think2>" in engine.requests[1].prompt
    assert result.output == "<answer0><answer1>"


async def test_stage_records_hold_client_side_latencies_and_verdicts():
    engine = FakeEngine(token_delay_s=0.01)
    result = await Runtime(engine).run_one(reasoner, {"question": "why"})
    think_rec, answer_rec = result.stages
    assert think_rec.output_tokens == 3
    assert think_rec.ttft_ms is not None and think_rec.ttft_ms >= 10
    assert think_rec.tpot_ms is not None and think_rec.tpot_ms >= 5
    assert think_rec.slo_met is True
    assert answer_rec.iteration == 0
    assert set(think_rec.to_json()) >= {
        "program_id",
        "stage",
        "ttft_ms",
        "tpot_ms",
        "ttft_budget_ms",
        "tpot_budget_ms",
        "slo_met",
        "output_tokens",
    }


async def test_a_failing_request_fails_only_its_own_program_with_a_reason():
    engine = FakeEngine(fail_stages=frozenset({"answer"}))
    results = await Runtime(engine).run_many(
        reasoner, [{"question": "a"}, {"question": "b"}], concurrency=2
    )
    assert [r.status for r in results] == [ProgramStatus.FAILED, ProgramStatus.FAILED]
    assert all("injected failure" in (r.error or "") for r in results)
    assert [rec.status for rec in results[0].stages] == ["finished", "failed"]


async def test_program_deadline_ends_the_instance_with_a_clear_status():
    @af.agent(deadline_ms=50)
    async def slow(ctx: af.Context, question: str) -> str:
        return await ctx.run(think, question)

    engine = FakeEngine(token_delay_s=0.2)
    result = await Runtime(engine).run_one(slow, {"question": "x"})
    assert result.status == ProgramStatus.DEADLINE_EXCEEDED
    assert "50 ms" in (result.error or "")
    assert result.stages[0].status == "failed"


async def test_many_instances_run_concurrently_and_all_terminate_in_input_order():
    engine = FakeEngine(token_delay_s=0.01)
    inputs = [{"question": str(i)} for i in range(12)]
    results = await Runtime(engine).run_many(reasoner, inputs, concurrency=6)
    assert [r.inputs for r in results] == inputs
    assert all(r.status == ProgramStatus.FINISHED for r in results)
    # 12 instances × 5 tokens × 10 ms sequentially would be 600 ms; 6-way concurrency is ~100 ms
    assert max(r.latency_ms for r in results) < 400


class _ProgramAwareEngine(FakeEngine):
    """A fake engine that, like a replica pool, wants to hear when each program ends."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ended_programs: list[str] = []
        self.num_open_streams = 0
        self.num_open_at_end: list[int] = []

    async def stream(self, request):
        self.num_open_streams += 1
        try:
            async for delta in super().stream(request):
                yield delta
        finally:
            self.num_open_streams -= 1

    def end_program(self, program_id: str) -> None:
        self.ended_programs.append(program_id)
        self.num_open_at_end.append(self.num_open_streams)


async def test_the_engine_hears_when_each_program_ends_however_it_ends():
    engine = _ProgramAwareEngine(fail_stages=frozenset({"answer"}))
    failed = await Runtime(engine).run_one(reasoner, {"question": "a"}, program_id="fails")
    engine.fail_stages = frozenset()
    finished = await Runtime(engine).run_one(reasoner, {"question": "b"}, program_id="ends")

    @af.agent(deadline_ms=20)
    async def slow(ctx: af.Context, question: str) -> str:
        return await ctx.run(think, question)

    engine.token_delay_s = 0.2
    late = await Runtime(engine).run_one(slow, {"question": "c"}, program_id="late")

    assert [failed.status, finished.status, late.status] == [
        ProgramStatus.FAILED,
        ProgramStatus.FINISHED,
        ProgramStatus.DEADLINE_EXCEEDED,
    ]
    assert engine.ended_programs == ["fails", "ends", "late"]
    assert engine.num_open_at_end == [0, 0, 0]  # told after the program's last request


async def test_a_cancelled_program_still_ends_on_the_engine():
    engine = _ProgramAwareEngine(token_delay_s=1.0)
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: Runtime(engine).run_one(reasoner, {"question": "x"}, program_id="gone")
        )
        await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    assert engine.ended_programs == ["gone"]
    assert engine.num_open_at_end == [0] and engine.aborted  # its request was aborted first

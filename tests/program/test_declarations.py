"""The program API: declaring stages and agents, and the errors bad declarations raise."""

import pytest

import agentflow as af
from agentflow.errors import ProgramError


def test_stage_declares_slo_limits_and_inputs_from_its_signature():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=64)
    def think(question: str) -> str:
        return f"think about {question}"

    assert think.name == "think"
    assert think.spec.slo.ttft_ms == 300
    assert think.spec.slo.tpot_ms == 40
    assert think.spec.max_tokens == 64
    assert think.spec.inputs == ("question",)
    assert think("x") == "think about x"


def test_ttft_as_slowdown_resolves_against_isolated_prefill_time():
    @af.stage(ttft="3x", tpot_ms=100, max_tokens=8)
    def summarize(text: str) -> str:
        return text

    assert summarize.spec.slo.ttft_slowdown == 3.0
    assert summarize.spec.slo.resolve_ttft_ms(isolated_prefill_ms=120.0) == pytest.approx(360.0)


def test_tpot_as_slowdown_resolves_against_a_lone_decode_step_and_names_the_tier():
    @af.stage(ttft_ms=500, tpot="2.5x", max_tokens=8)
    def think(question: str) -> str:
        return question

    assert think.spec.slo.tpot_slowdown == 2.5
    assert think.spec.slo.tpot_ms is None
    assert think.spec.slo.resolve_tpot_ms(lone_decode_ms=40.0) == pytest.approx(100.0)
    assert think.spec.slo.describe_tpot() == "2.5x decode"
    assert think.spec.tier == "tpot2.5x"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tpot_ms": 40, "max_tokens": 8}, "ttft_ms"),
        ({"ttft_ms": 100, "max_tokens": 8}, "tpot_ms"),
        ({"ttft_ms": -5, "tpot_ms": 40, "max_tokens": 8}, "ttft_ms"),
        ({"ttft_ms": 100, "tpot_ms": 0, "max_tokens": 8}, "tpot_ms"),
        ({"ttft_ms": 100, "tpot_ms": 40, "max_tokens": 0}, "max_tokens"),
        ({"ttft": "fast", "tpot_ms": 40, "max_tokens": 8}, "ttft"),
        ({"ttft": "0.5x", "tpot_ms": 40, "max_tokens": 8}, "ttft_slowdown"),
        ({"ttft_ms": 100, "ttft": "3x", "tpot_ms": 40, "max_tokens": 8}, "ttft"),
        ({"ttft_ms": 100, "tpot": "0.5x", "max_tokens": 8}, "tpot_slowdown"),
        ({"ttft_ms": 100, "tpot": "quick", "max_tokens": 8}, "tpot"),
        ({"ttft_ms": 100, "tpot_ms": 40, "tpot": "2x", "max_tokens": 8}, "tpot"),
        ({"ttft_ms": 100, "tpot_ms": "2x", "max_tokens": 8}, "tpot_ms"),
    ],
)
def test_bad_budgets_raise_program_error_naming_stage_and_field(kwargs, field):
    with pytest.raises(ProgramError) as info:

        @af.stage(**kwargs)
        def broken(x: str) -> str:
            return x

    assert info.value.stage == "broken"
    assert info.value.field == field
    assert "broken" in str(info.value)


def test_agent_discovers_the_stages_its_body_uses_and_builds_the_graph():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def think(question: str) -> str:
        return question

    @af.stage(ttft="3x", tpot_ms=150, max_tokens=8)
    def answer(question: str, think: str) -> str:
        return question + think

    @af.agent
    async def reasoner(ctx, question: str) -> str:
        notes = await ctx.run(think, question)
        return await ctx.run(answer, question, notes)

    assert [s.name for s in reasoner.stages] == ["think", "answer"]
    assert reasoner.inputs == ("question",)
    assert set(reasoner.graph.nodes) == {"think", "answer"}
    assert list(reasoner.graph.edges) == [("think", "answer")]


def test_unknown_stage_input_names_the_stage_and_the_input():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def act(question: str, observation: str) -> str:
        return question

    with pytest.raises(ProgramError) as info:

        @af.agent
        async def tool_agent(ctx, question: str) -> str:
            return await ctx.run(act, question, "")

    assert info.value.stage == "act"
    assert info.value.field == "inputs"
    assert "observation" in str(info.value)


def test_extra_inputs_make_non_stage_values_valid_inputs():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def act(question: str, observation: str) -> str:
        return question

    @af.agent(extra_inputs=["observation"])
    async def tool_agent(ctx, question: str) -> str:
        return await ctx.run(act, question, "")

    assert tool_agent.stages == (act,)


def test_cycle_between_stages_is_rejected_unless_declared_as_a_loop():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def plan(question: str, act: str) -> str:
        return question

    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def act(plan: str) -> str:
        return plan

    with pytest.raises(ProgramError) as info:

        @af.agent(stages=[plan, act])
        async def looping(ctx, question: str) -> str:
            return question

    assert info.value.code == "graph-cycle"
    assert "plan" in str(info.value) and "act" in str(info.value)

    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8, loop_inputs=["act"])
    def replan(question: str, act: str) -> str:
        return question

    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8, name="act")
    def act2(replan: str) -> str:
        return replan

    @af.agent(stages=[replan, act2])
    async def declared_loop(ctx, question: str) -> str:
        return question

    assert declared_loop.graph.edges["act", "replan"]["loop"] is True


def test_loop_input_must_be_a_parameter():
    with pytest.raises(ProgramError) as info:

        @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8, loop_inputs=["missing"])
        def act(question: str) -> str:
            return question

        @af.agent
        async def agent_(ctx, question: str) -> str:
            return await ctx.run(act, question)

    assert info.value.field == "loop_inputs"


def test_agent_must_be_async_and_take_a_context():
    with pytest.raises(ProgramError, match="async"):

        @af.agent
        def not_async(ctx):
            return None

    with pytest.raises(ProgramError, match="context"):

        @af.agent
        async def no_ctx():
            return None


def test_stage_must_return_a_string_prompt():
    @af.stage(ttft_ms=300, tpot_ms=40, max_tokens=8)
    def numeric(x: int) -> str:
        return x  # type: ignore[return-value]

    with pytest.raises(ProgramError, match="str"):
        numeric(3)

"""The idle-engine check: budgets no engine step could meet are refused before serving."""

import pytest

import agentflow as af
from agentflow.errors import ProgramError
from agentflow.planner import StepTimePredictor
from agentflow.program.feasibility import check_feasible, infeasible_budgets

PREDICTOR = StepTimePredictor.default_cpu()
MAX_TOKENS = 16


def _agent(**budgets):
    @af.stage(max_tokens=MAX_TOKENS, **budgets)
    def step(q: str) -> str:
        return q

    @af.agent
    async def one(ctx: af.Context, q: str) -> str:
        return await ctx.run(step, q)

    return one


def test_an_absolute_tpot_below_one_lone_decode_step_is_refused_naming_the_field():
    decode_ms = PREDICTOR.lone_decode_s(MAX_TOKENS) * 1e3
    with pytest.raises(ProgramError) as info:
        check_feasible(_agent(ttft_ms=10_000, tpot_ms=0.5 * decode_ms), PREDICTOR)
    assert (info.value.stage, info.value.field) == ("step", "tpot_ms")


def test_slowdown_budgets_are_feasible_on_any_engine_by_construction():
    # 1x is exactly what the request needs alone: never below an idle engine's step.
    check_feasible(_agent(ttft="1x", tpot="1x"), PREDICTOR)


def test_every_offending_field_is_listed_against_the_engines_own_times():
    agent = _agent(ttft_ms=20, tpot_ms=40)
    problems = infeasible_budgets(agent, lambda num_tokens: 100.0, shortest_prefill_ms=30.0)
    assert [(p.stage, p.field) for p in problems] == [("step", "tpot_ms"), ("step", "ttft_ms")]
    assert "100.0 ms" in str(problems[0]) and "30.0 ms" in str(problems[1])
    assert infeasible_budgets(agent, lambda num_tokens: 40.0, shortest_prefill_ms=20.0) == []

"""Reject stages whose SLO no engine step could meet, even with the engine to themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentflow.errors import ProgramError
from agentflow.program.agent import Agent

if TYPE_CHECKING:
    from agentflow.planner import StepTimePredictor

__all__ = ["check_feasible", "infeasible_budgets"]


def infeasible_budgets(
    agent: Agent, lone_decode_ms: Callable[[int], float], shortest_prefill_ms: float
) -> list[ProgramError]:
    """The absolute budgets of `agent`'s stages that an idle engine cannot meet.

    An absolute TPOT must cover one decode step of a lone request at its longest context
    (prompt length unknown: the output bound alone is used, so the check never flags a
    feasible stage); an absolute TTFT must cover the prefill of a one-token prompt. A budget
    given as a slowdown (≥ 1x what the request needs alone) is feasible by construction.

    Args:
        agent: the program whose stages are checked.
        lone_decode_ms: one decode step of a request alone, by its context length.
        shortest_prefill_ms: the prefill of a one-token prompt on an idle engine.

    Returns:
        One error per offending field, naming the stage, the field and the idle-engine time.
    """
    problems = []
    for stage in agent.stages:
        spec = stage.spec
        # (field, declared budget, what an idle engine needs, what that time is)
        checks = (
            ("tpot_ms", spec.slo.tpot_ms, lone_decode_ms(spec.max_tokens), "one decode step"),
            ("ttft_ms", spec.slo.ttft_ms, shortest_prefill_ms, "the shortest prefill"),
        )
        for field, budget_ms, needed_ms, what in checks:
            if budget_ms is not None and budget_ms < needed_ms:
                problems.append(
                    ProgramError(
                        f"infeasible: {field}={budget_ms:g} but {what} takes"
                        f" {needed_ms:.1f} ms on an idle engine",
                        stage=spec.name,
                        field=field,
                        code="slo-infeasible",
                    )
                )
    return problems


def check_feasible(agent: Agent, predictor: StepTimePredictor) -> None:
    """Raise if a stage's absolute budget is below what an idle engine needs.

    Times come from the step-time model `predictor`; see `infeasible_budgets`.

    Raises:
        ProgramError: the first offending field, naming the stage, the field and the time.
    """
    problems = infeasible_budgets(
        agent,
        lambda num_tokens: predictor.lone_decode_s(num_tokens) * 1e3,
        predictor.isolated_prefill_s(1) * 1e3,
    )
    if problems:
        raise problems[0]

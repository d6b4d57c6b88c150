"""Reject stages whose SLO no engine step could meet, even with the engine to themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow.errors import ProgramError
from agentflow.program.agent import Agent

if TYPE_CHECKING:
    from agentflow.planner import StepTimePredictor

__all__ = ["check_feasible"]


def check_feasible(agent: Agent, predictor: StepTimePredictor) -> None:
    """Raise if a stage's budget is below what an idle engine needs.

    An absolute TPOT must cover one decode step of a lone request at its longest context
    (prompt length unknown: the output bound alone is used, so the check never rejects a
    feasible stage); an absolute TTFT must cover the prefill of a one-token prompt. A budget
    given as a slowdown (≥ 1x what the request needs alone) is feasible by construction.

    Raises:
        ProgramError: naming the stage, the field and the predicted idle-engine time.
    """
    for stage in agent.stages:
        spec = stage.spec
        decode_ms = predictor.lone_decode_s(spec.max_tokens) * 1e3
        if spec.slo.tpot_ms is not None and spec.slo.tpot_ms < decode_ms:
            raise ProgramError(
                f"infeasible: tpot_ms={spec.slo.tpot_ms:g} but one decode step takes"
                f" {decode_ms:.1f} ms on an idle engine",
                stage=spec.name,
                field="tpot_ms",
                code="slo-infeasible",
            )
        prefill_ms = predictor.isolated_prefill_s(1) * 1e3
        if spec.slo.ttft_ms is not None and spec.slo.ttft_ms < prefill_ms:
            raise ProgramError(
                f"infeasible: ttft_ms={spec.slo.ttft_ms:g} but the shortest prefill takes"
                f" {prefill_ms:.1f} ms on an idle engine",
                stage=spec.name,
                field="ttft_ms",
                code="slo-infeasible",
            )

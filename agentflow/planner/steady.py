"""Steady decode stretches: keep the last plan instead of planning every step again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from agentflow.planner.config import PlannerConfig
from agentflow.planner.horizon import plan_within_bound
from agentflow.planner.plan import Planner
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import StepPlan

__all__ = ["SteadyPlanner"]


class SteadyPlanner:
    """`plan_within_bound`, with the last plan handed back while nothing can change it.

    A plan costs about a millisecond at a handful of requests (numpy calls on small arrays),
    as long as a GPU decode step. Between arrivals most steps are alike: nothing waits, every
    running request is an admitted decoder, and the plan decodes all of them, with no prompt
    to prefill and no best-effort work. While that holds, no one can be admitted or promoted,
    and the same batch (one token more context per decoder) runs again. SLOs-Serve likewise
    plans on arrivals and follows the plan between them.

    Not while speculating: each decoder's verify length follows its planning tier, which
    follows its slack, and slack moves every step (a decoder ahead of schedule drops to a
    looser tier and verifies less). Reusing those plans cost the simulator's speculative
    capacity benchmark 4 % to 8 % on three of six scenarios.

    A fresh plan is made on any change of the inputs that matter: a request arrives,
    finishes, is demoted or is not decoding; the step bound moves or the step-time model is
    replaced; or `PlannerConfig.max_plan_reuses` plans were reused in a row, so that an engine
    slower than its model (an admitted set grown infeasible, or a model refined online) is
    found within that many steps.

    Args:
        planner: the planner making the fresh plans.
    """

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.num_fresh = 0
        """Plans made (each may call the planner twice, see `plan_within_bound`)."""
        self.num_reused = 0
        """Steps that reused the last plan."""
        self._steady: StepPlan | None = None
        self._steady_for: (
            tuple[frozenset[str], StepTimePredictor, PlannerConfig, PlannerConfig] | None
        ) = None
        self._reuses_in_a_row = 0

    def plan(
        self,
        now_s: float,
        running: Sequence[PlanRequest],
        waiting: Sequence[PlanRequest],
        predictor: StepTimePredictor,
        bounded: PlannerConfig,
        widest: PlannerConfig,
    ) -> StepPlan:
        """This step's plan: the last one when it stands, else a fresh `plan_within_bound`."""
        key = (predictor, bounded, widest)
        if self._steady is not None and self._stands(running, waiting, key):
            self._reuses_in_a_row += 1
            self.num_reused += 1
            return self._steady
        plan = plan_within_bound(self.planner, now_s, running, waiting, predictor, bounded, widest)
        self.num_fresh += 1
        self._reuses_in_a_row = 0
        self._steady, self._steady_for = None, None
        if _decodes_everyone(plan, running, waiting):
            # Reused, it admits no one new: the requests it admitted are now old.
            self._steady = replace(plan, newly_admitted_ids=())
            ids = frozenset(r.request_id for r in running)
            self._steady_for = (ids, *key)
        return plan

    def _stands(
        self,
        running: Sequence[PlanRequest],
        waiting: Sequence[PlanRequest],
        key: tuple[StepTimePredictor, PlannerConfig, PlannerConfig],
    ) -> bool:
        assert self._steady_for is not None
        ids, *steady_key = self._steady_for
        return (
            self._reuses_in_a_row < key[1].max_plan_reuses
            and not waiting
            and all(now is then for now, then in zip(key, steady_key, strict=True))
            and len(running) == len(ids)
            and all(r.is_admitted and _is_decoding(r) and r.request_id in ids for r in running)
        )


def _is_decoding(request: PlanRequest) -> bool:
    return request.num_computed_tokens >= request.num_prompt_tokens


def _decodes_everyone(
    plan: StepPlan, running: Sequence[PlanRequest], waiting: Sequence[PlanRequest]
) -> bool:
    """Whether `plan` is a steady one: it only decodes, and decodes every running request."""
    return (
        not waiting
        and not plan.is_overloaded
        and not plan.best_effort_ids
        and not plan.prefill_tokens_by_id
        and not plan.spec_len_by_tier
        and len(plan.decode_ids) == len(running)
        and set(plan.decode_ids) == {r.request_id for r in running}
        and all(_is_decoding(r) for r in running)
    )

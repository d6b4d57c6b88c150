"""Which admitted requests to give up when the admitted set itself became infeasible.

The planners keep every earlier admission, so when the step-time model turns out optimistic
(or the host stalls) the admitted set can become infeasible, and then nothing new is admitted
until it drains: every arrival meanwhile is best-effort, a miss. Giving up the admitted jobs
that no longer fit restores a feasible set that new requests can join. The pass keeps jobs in
deadline order, as EDF would serve them; one that does not fit beside those kept before it
is dropped, or replaces the kept prompt with the most prefill work if that is bulkier and the
swap fits (Moore-Hodgson's rule, which maximises the jobs on time on one machine): the fast
planner's admission pass, applied to the admitted jobs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from agentflow.planner.config import PlannerConfig
from agentflow.planner.fast import admit_greedy
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import build_problem
from agentflow.planner.request import PlanRequest

__all__ = ["demoted", "jobs_to_shed"]


def jobs_to_shed(
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> tuple[str, ...]:
    """Ids of admitted requests to demote so that the remaining admitted set is feasible.

    Empty when the admitted set is feasible as it is. The fast planner's greedy admission does
    the work: the admitted jobs are offered to it afresh, and everything else is kept out.
    """
    problem = build_problem(now_s, running, waiting, predictor, config)
    offered = replace(
        problem, is_old=np.zeros_like(problem.is_old), is_late=problem.is_late | ~problem.is_old
    )
    kept = admit_greedy(offered, config).admitted
    shed = np.flatnonzero(problem.is_old & ~kept).tolist()
    return tuple(problem.requests[j].request_id for j in shed)  # in deadline order


def demoted(requests: Sequence[PlanRequest], request_ids: Collection[str]) -> list[PlanRequest]:
    """`requests` with those in `request_ids` no longer admitted (for the re-plan after a shed)."""
    return [
        replace(r, is_admitted=False) if r.is_admitted and r.request_id in request_ids else r
        for r in requests
    ]

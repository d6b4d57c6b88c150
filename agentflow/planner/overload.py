"""Which admitted requests to give up when the admitted set itself became infeasible.

The planners keep every earlier admission, so when the step-time model turns out optimistic
(or the host stalls) the admitted set can become infeasible, and then nothing new is admitted
until it drains: every arrival meanwhile is best-effort, a miss. Giving up the admitted jobs
that no longer fit restores a feasible set that new requests can join. The pass keeps jobs in
deadline order, as EDF would serve them; one that does not fit beside those kept before it
is dropped, or replaces the kept prompt with the most prefill work if that is bulkier and the
swap fits (Moore-Hodgson's rule, which maximises the jobs on time on one machine).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agentflow.planner.config import PlannerConfig
from agentflow.planner.grid import build_grid
from agentflow.planner.ledger import Ledger, job_table
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import build_problem
from agentflow.planner.request import PlanRequest

__all__ = ["jobs_to_shed"]


def jobs_to_shed(
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> tuple[str, ...]:
    """Ids of admitted requests to demote so that the remaining admitted set is feasible.

    Empty when the admitted set is feasible as it is.
    """
    problem = build_problem(now_s, running, waiting, predictor, config)
    ledger = Ledger(problem, build_grid(problem))
    ledger.load_many(problem, np.zeros(0, dtype=np.int64))  # supply of the empty set
    jobs = job_table(problem, ledger.grid)
    work = problem.work_s.tolist()
    kept: list[int] = []
    shed: list[int] = []
    num_blocks = 0
    for j in np.flatnonzero(problem.is_old).tolist():
        blocks = int(problem.num_blocks[j])
        if num_blocks + blocks > problem.kv_blocks_total or len(kept) >= problem.max_num_seqs:
            shed.append(j)
            continue
        if ledger.try_add(jobs[j]):
            kept.append(j)
            num_blocks += blocks
            continue
        # Moore-Hodgson: give up the bulkiest prompt kept so far instead, if that lets j in.
        bulkiest = max(kept, key=work.__getitem__, default=None)
        if bulkiest is not None and work[bulkiest] > work[j]:
            ledger.remove(jobs[bulkiest])
            if ledger.try_add(jobs[j]):
                kept.remove(bulkiest)
                kept.append(j)
                shed.append(bulkiest)
                num_blocks += blocks - int(problem.num_blocks[bulkiest])
                continue
            ledger.try_add(jobs[bulkiest], force=True)  # it fitted before: put it back
        shed.append(j)
    return tuple(problem.requests[j].request_id for j in sorted(shed))

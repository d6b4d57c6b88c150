"""Brute-force admission oracle: the largest feasible superset of the old jobs."""

from __future__ import annotations

import itertools

from agentflow.planner.feasibility import check_admission
from agentflow.planner.problem import PlanningProblem


def best_admitted_count(problem: PlanningProblem) -> int | None:
    """Admitted count of the best feasible set, or None if the old jobs alone are infeasible."""
    old = problem.is_old
    if not check_admission(problem, old).is_feasible:
        return None
    candidates = [j for j in range(problem.num_jobs) if not old[j] and not problem.is_late[j]]
    for size in range(len(candidates), 0, -1):
        for subset in itertools.combinations(candidates, size):
            admitted = old.copy()
            admitted[list(subset)] = True
            if check_admission(problem, admitted).is_feasible:
                return int(admitted.sum())
    return int(old.sum())

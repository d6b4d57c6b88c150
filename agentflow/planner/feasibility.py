"""Reference feasibility check of an admitted set under the fluid EDF model (see problem.py).

Straightforward and independent of the planners' incremental bookkeeping: the planners are
tested against it, and the brute-force oracle in the tests is built on it. It evaluates the
admitted set on the problem's whole grid, as the planners do: the deadline steps' overhead
credit counts the interval just before each deadline, so it depends on where intervals end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentflow.planner.grid import build_grid
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.step_plan import Rejection

__all__ = ["EPS", "Verdict", "check_admission"]

EPS = 1e-9
"""Tolerance on supply and rate comparisons (seconds, shares)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a set of jobs is feasible, and the first constraint it breaks."""

    is_feasible: bool
    reason: Rejection | None = None


def check_admission(problem: PlanningProblem, admitted: npt.NDArray[np.bool_]) -> Verdict:
    """Check the model's four constraints for the jobs where `admitted` is true."""
    idx = np.flatnonzero(admitted)
    if len(idx) > problem.max_num_seqs:
        return Verdict(False, Rejection.SEQS)
    if int(problem.num_blocks[idx].sum()) > problem.kv_blocks_total:
        return Verdict(False, Rejection.MEMORY)
    if len(idx) == 0:
        return Verdict(True)
    grid = build_grid(problem)
    points, dt = grid.points_s, grid.dt_s
    a, b = grid.start_idx[idx], grid.end_idx[idx]
    num_intervals = grid.num_intervals

    load = np.zeros(num_intervals + 1)
    np.add.at(load, a, problem.load[idx])
    np.add.at(load, b, -problem.load[idx])
    load = np.cumsum(load)[:num_intervals]
    num_levels = len(problem.periods_s)
    active = np.zeros((num_levels, num_intervals + 1))
    np.add.at(active, (problem.level[idx], a), 1.0)
    np.add.at(active, (problem.level[idx], b), -1.0)
    is_active = np.cumsum(active, axis=1)[:, :num_intervals] > 0.5
    is_active[-1, :] = True  # the idle level is the fallback
    tightest = np.argmax(is_active, axis=0)
    rate = 1.0 - problem.base_s * grid.inv_periods[tightest] - load
    if np.any(rate < -EPS):
        return Verdict(False, Rejection.COMPUTE)

    supply = np.concatenate(([0.0], np.cumsum(rate * dt)))
    demand = np.zeros(len(points))
    np.add.at(demand, grid.deadline_idx[idx], problem.work_s[idx])
    # The step ending at each point: its overhead (less what the fluid share already paid in
    # the interval before it) and one decode round of the decoders active just before it.
    rounds = np.zeros(num_intervals + 1)
    np.add.at(rounds, a, problem.decode_cost_s[idx])
    np.add.at(rounds, b, -problem.decode_cost_s[idx])
    rounds = (
        problem.deadline_overhead_s
        + np.concatenate(([0.0], np.cumsum(rounds)[:num_intervals]))
        - grid.overhead_credit(tightest)
    )
    due = grid.deadline_idx[idx][~problem.is_decoding[idx]]
    margin = (supply - np.cumsum(demand) - rounds)[due]
    if np.any(margin < -EPS):
        return Verdict(False, Rejection.COMPUTE)
    return Verdict(True)

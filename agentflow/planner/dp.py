"""Exact planner: the SLOs-Serve admission DP (§2.3) on the fluid EDF model."""

# NOTE(planner): jobs are in EDF order. A state in `dp[n][r]` says "job n is the last accepted
# one and r[k] accepted jobs are in tier k"; its Pareto list holds (profit, KV blocks, leftover
# prefill supply at job n's deadline, decode profile after it). Accepting n after state s adds
# the supply of the window [deadline of s, deadline of n] under s's decoders and takes n's
# work; the leftover must cover the decode round due with n. Then n's decode load is added
# from its deadline on. The state is dropped if that fails, if memory or the sequence cap
# overflows, or if decodes stop being sustainable (rate < 0 anywhere ahead: the paper's
# `plan(horizon, acc + n)` test). The two defects the reference describes are fixed: the best
# state is the one that won, and dominance is profit up, memory down, leftover up, and a decode
# profile (load, decode rounds, tightest cadence) no worse at any instant after the deadline.
# In the fluid model a state's finish time is implied by its leftover and the profile replaces
# the per-window batch list, so those two fields of the paper's state are not stored. Pruning
# keeps the DP exact with respect to `feasibility.check_admission`; it is still exponential in
# the number of tiers and pending jobs, hence the optional transition cap.

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentflow.planner.config import PlannerConfig
from agentflow.planner.fast import admit_greedy
from agentflow.planner.feasibility import EPS, check_admission
from agentflow.planner.grid import Grid, build_grid
from agentflow.planner.pipeline import run_planning_round
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import Admission, Rejection, StepPlan

__all__ = ["DPOutcome", "ExactPlanner", "solve_dp"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Key = tuple[int, ...]


@dataclass(slots=True, eq=False)
class _State:
    """One Pareto point: the accepted chain ending at `job`, and its decode profile."""

    job: int
    parent: _State | None
    num_jobs: int
    num_blocks: int
    leftover_s: float
    load: FloatArray
    tightest: IntArray
    supply: FloatArray
    """Cumulative prefill supply at each grid point under this state's decoders."""
    rounds: FloatArray
    """Per interval: one decode round (sum of decode costs) of the active decoders."""


@dataclass(frozen=True, slots=True)
class DPOutcome:
    """Result of `solve_dp`."""

    admission: Admission
    num_transitions: int
    is_complete: bool


class _Exhausted(Exception):
    """The transition cap was reached."""


class _Solver:
    """The DP's tables and transition rule for one problem."""

    def __init__(self, problem: PlanningProblem, grid: Grid, max_transitions: int | None):
        self.p, self.g = problem, grid
        self.max_transitions = max_transitions
        self.num_transitions = 0
        self.base_s = problem.base_s

    def root(self) -> _State:
        k = self.g.num_intervals
        rate = np.full(k, self.g.idle_rate)
        return _State(
            -1,
            None,
            0,
            0,
            0.0,
            np.zeros(k),
            np.full(k, self.p.idle_level, dtype=np.int64),
            np.concatenate(([0.0], np.cumsum(rate * self.g.dt_s))),
            np.zeros(k),
        )

    def due_round(self, s: _State, j: int) -> float:
        """The round due at grid point j, beyond the problem's deadline overhead.

        One decode round of the decoders active before j, less the overhead credit there.
        """
        if j == 0:
            return 0.0
        credit = self.g.interval_credit(s.tightest[j - 1 : j], j - 1)
        return float(s.rounds[j - 1] - credit[0])

    def extend(self, s: _State, n: int) -> _State | None:
        """Accept job n after state s, or None if that breaks a constraint."""
        self.num_transitions += 1
        if self.max_transitions is not None and self.num_transitions > self.max_transitions:
            raise _Exhausted
        p, g = self.p, self.g
        num_blocks = s.num_blocks + int(p.num_blocks[n])
        if s.num_jobs + 1 > p.max_num_seqs or num_blocks > p.kv_blocks_total:
            return None
        jm = 0 if s.job < 0 else int(g.deadline_idx[s.job])
        jn = int(g.deadline_idx[n])
        leftover = s.leftover_s + float(s.supply[jn] - s.supply[jm]) - float(p.work_s[n])
        # The step ending at n's deadline: its overhead and the decoders active just before it.
        due_round = 0.0
        if p.work_s[n] > 0:
            due_round = p.deadline_overhead_s + self.due_round(s, jn)
        if leftover - due_round < -EPS:
            return None
        a, b = int(g.start_idx[n]), int(g.end_idx[n])
        load, tightest, supply, rounds = s.load, s.tightest, s.supply, s.rounds
        if a < b:
            load, tightest, rounds = load.copy(), tightest.copy(), rounds.copy()
            load[a:b] += p.load[n]
            rounds[a:b] += p.decode_cost_s[n]
            np.minimum(tightest[a:b], p.level[n], out=tightest[a:b])
            rate = 1.0 - self.base_s * g.inv_periods[tightest[a:]] - load[a:]
            if rate[: b - a].min() < -EPS:
                return None
            supply = supply.copy()
            supply[a + 1 :] = supply[a] + np.cumsum(rate * g.dt_s[a:])
        return _State(n, s, s.num_jobs + 1, num_blocks, leftover, load, tightest, supply, rounds)


def _dominates(solver: _Solver, x: _State, y: _State, j: int) -> bool:
    """Whether state x is at least as good as y for every continuation after grid point j.

    Past j, looser cadences are better: they add more supply before a deadline than they take
    from its overhead credit. The round due at j itself sits on the interval before it, where
    later jobs change nothing, so it is compared as it is.
    """
    return (
        x.num_blocks <= y.num_blocks
        and x.leftover_s >= y.leftover_s
        and bool(np.all(x.load[j:] <= y.load[j:]))
        and bool(np.all(x.tightest[j:] >= y.tightest[j:]))
        and bool(np.all(x.rounds[j:] <= y.rounds[j:]))
        and solver.due_round(x, j) <= solver.due_round(y, j)
    )


def _insert(solver: _Solver, bucket: list[_State], child: _State, j: int) -> None:
    if any(_dominates(solver, y, child, j) for y in bucket):
        return
    bucket[:] = [y for y in bucket if not _dominates(solver, child, y, j)]
    bucket.append(child)


def _chain(state: _State) -> list[int]:
    jobs = []
    node: _State | None = state
    while node is not None and node.job >= 0:
        jobs.append(node.job)
        node = node.parent
    return jobs


def _explain(problem: PlanningProblem, admitted: npt.NDArray[np.bool_]) -> dict[int, Rejection]:
    """Why each non-admitted candidate was left out: the constraint it would break."""
    reasons: dict[int, Rejection] = {}
    for j in np.flatnonzero(~admitted).tolist():
        if problem.is_late[j]:
            reasons[j] = Rejection.LATE
            continue
        trial = admitted.copy()
        trial[j] = True
        reasons[j] = check_admission(problem, trial).reason or Rejection.COMPUTE
    return reasons


def _run_layers(solver: _Solver, problem: PlanningProblem) -> list[dict[Key, list[_State]]]:
    """Fill dp layer n + 1 (job n last accepted) for every job; layer 0 holds the root."""
    num_tiers = max(len(problem.tiers_s), 1)
    layers: list[dict[Key, list[_State]]] = [{(0,) * num_tiers: [solver.root()]}]
    last_old = -1
    for n in range(problem.num_jobs):
        layers.append({})
        if problem.is_late[n] and not problem.is_old[n]:
            continue
        tier, j = int(problem.tier[n]), int(solver.g.deadline_idx[n])
        for m in range(last_old, n):  # never skip an old job
            for key, states in layers[m + 1].items():
                new_key = (*key[:tier], key[tier] + 1, *key[tier + 1 :])
                for s in states:
                    child = solver.extend(s, n)
                    if child is not None:
                        _insert(solver, layers[n + 1].setdefault(new_key, []), child, j)
        if problem.is_old[n]:
            last_old = n
    return layers


def solve_dp(problem: PlanningProblem, max_transitions: int | None = None) -> DPOutcome:
    """Maximum number of admitted jobs (old ones always kept), exactly, under the fluid model.

    Args:
        problem: the jobs, in EDF order.
        max_transitions: stop after this many state extensions (None: no cap).

    Returns:
        The admission (empty of new jobs if the old ones alone are infeasible), the work done,
        and whether the search finished. An unfinished search returns no admission of new jobs.
    """
    solver = _Solver(problem, build_grid(problem), max_transitions)
    try:
        layers = _run_layers(solver, problem)
    except _Exhausted:
        empty = Admission(problem.is_old.copy(), {}, is_complete=False)
        return DPOutcome(empty, solver.num_transitions, is_complete=False)
    old = np.flatnonzero(problem.is_old)
    last_old = int(old[-1]) if len(old) else -1
    best: _State | None = None
    for layer in layers[last_old + 1 :]:
        for states in layer.values():
            for s in states:
                if best is None or (s.num_jobs, s.leftover_s) > (best.num_jobs, best.leftover_s):
                    best = s
    admitted = problem.is_old.copy()
    if best is None:
        reasons = {
            j: Rejection.LATE if problem.is_late[j] else Rejection.OLD_INFEASIBLE
            for j in np.flatnonzero(~admitted).tolist()
        }
        return DPOutcome(
            Admission(admitted, reasons, is_overloaded=True), solver.num_transitions, True
        )
    admitted[_chain(best)] = True
    return DPOutcome(Admission(admitted, _explain(problem, admitted)), solver.num_transitions, True)


class ExactPlanner:
    """SLOs-Serve's DP planner; past its work cap it falls back to the fast planner.

    Args:
        max_transitions: work cap; None uses `PlannerConfig.max_dp_transitions`.
    """

    def __init__(self, max_transitions: int | None = None) -> None:
        self.max_transitions = max_transitions

    def admit(self, problem: PlanningProblem, config: PlannerConfig) -> Admission:
        """Exact admission, or the fast planner's (marked incomplete) past the cap."""
        cap = self.max_transitions
        outcome = solve_dp(problem, config.max_dp_transitions if cap is None else cap)
        if outcome.is_complete:
            return outcome.admission
        return dataclasses.replace(admit_greedy(problem, config), is_complete=False)

    def plan(
        self,
        now_s: float,
        running: Sequence[PlanRequest],
        waiting: Sequence[PlanRequest],
        predictor: StepTimePredictor,
        config: PlannerConfig,
    ) -> StepPlan:
        """Plan one round; see `agentflow.planner.plan`."""
        return run_planning_round(self.admit, now_s, running, waiting, predictor, config)

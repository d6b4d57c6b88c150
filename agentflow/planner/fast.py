"""Fast planner: greedy EDF admission checked incrementally against the fluid model."""

# NOTE(planner): SLOs-Serve's `edf_sim` (§2.7) re-simulates the admitted set for every
# candidate. Here the simulation is kept as running totals on a fixed time grid (every job's
# deadline and decode window): per interval the prefill supply rate, per breakpoint the margin
# of each due prompt (supply - EDF demand - the decode round due with it) and its suffix
# minimum. A candidate only lowers margins from its deadline on, so `work > suffix_min[d]`
# rejects it in O(1), as does a decode load above the rate where its decoding starts; the full
# check touches only its decode window. Adding a job never raises a margin, so a rejected
# candidate stays rejected and one EDF pass suffices. Greedy EDF alone can keep a long prompt
# that blocks two short ones, so a rejected candidate may replace the newly admitted job with
# the most prefill work (Moore-Hodgson, optimal for the one-machine deadline problem), and the
# rejects get one more pass after an exchange. Cost: O(N log N) set-up plus O(window) numpy
# work per candidate that survives the O(1) tests; exchanges are capped per plan.

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agentflow.planner.config import PlannerConfig
from agentflow.planner.feasibility import EPS
from agentflow.planner.grid import Grid, build_grid
from agentflow.planner.pipeline import run_planning_round
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import Admission, Rejection, StepPlan

__all__ = ["FastPlanner", "admit_greedy"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class _Ledger:
    """Running supply/demand totals of the admitted set on the problem's grid.

    Per interval: prefill supply rate, decode load, tightest active cadence. Per breakpoint:
    `slack` (supply minus EDF demand), `rounds` (one decode round of the decoders active just
    before it), and `margin` = slack - rounds where an admitted prompt is due (+inf elsewhere),
    with its suffix minimum.
    """

    __slots__ = (
        "_suffix_view",
        "active",
        "base_s",
        "dt",
        "grid",
        "inv_periods",
        "load",
        "margin",
        "num_due",
        "points",
        "rate",
        "rate_suffix_min",
        "rounds",
        "slack",
        "suffix_min",
        "tightest",
    )

    def __init__(self, problem: PlanningProblem, grid: Grid) -> None:
        k = grid.num_intervals
        self.grid = grid
        self.base_s = problem.base_s
        self.points, self.dt, self.inv_periods = grid.points_s, grid.dt_s, grid.inv_periods
        self.load: FloatArray = np.zeros(k)
        self.active: IntArray = np.zeros((len(problem.periods_s), k), dtype=np.int64)
        self.active[-1, :] = 1  # the idle level is always "active": it is the fallback
        self.tightest: IntArray = np.full(k, problem.idle_level, dtype=np.int64)
        self.rate: FloatArray = np.full(k, grid.idle_rate)
        self.rate_suffix_min: FloatArray = np.append(self.rate, np.inf)
        """min(rate[i:]) at i; +inf past the end."""
        self.slack: FloatArray = np.zeros(k + 1)
        self.rounds: FloatArray = np.zeros(k + 1)
        self.num_due: IntArray = np.zeros(k + 1, dtype=np.int64)
        """Admitted prompts due at each breakpoint."""
        self.margin: FloatArray = np.full(k + 1, np.inf)
        self.suffix_min: FloatArray = np.full(k + 2, np.inf)
        """min(margin[i:]) at i; +inf past the end."""
        self._suffix_view = self.suffix_min[k::-1]

    def load_many(self, problem: PlanningProblem, jobs: npt.NDArray[np.int64]) -> bool:
        """Add `jobs` at once (the old set); return whether the result is feasible."""
        grid, k = self.grid, self.grid.num_intervals
        a, b = grid.start_idx[jobs], grid.end_idx[jobs]

        def per_interval(values: npt.NDArray[np.float64]) -> FloatArray:
            diff = np.zeros(k + 1)
            np.add.at(diff, a, values)
            np.add.at(diff, b, -values)
            return np.cumsum(diff)[:k]

        active = np.zeros((len(problem.periods_s), k + 1), dtype=np.int64)
        np.add.at(active, (problem.level[jobs], a), 1)
        np.add.at(active, (problem.level[jobs], b), -1)
        self.active = np.cumsum(active, axis=1)[:, :k]
        self.active[-1, :] = 1
        self.tightest = np.argmax(self.active > 0, axis=0).astype(np.int64)
        self.load = per_interval(problem.load[jobs])
        self.rate = 1.0 - self.base_s * self.inv_periods[self.tightest] - self.load
        self.rounds = np.concatenate(([0.0], per_interval(problem.decode_cost_s[jobs])))
        demand = np.zeros(k + 1)
        np.add.at(demand, grid.deadline_idx[jobs], problem.work_s[jobs])
        supply = np.concatenate(([0.0], np.cumsum(self.rate * self.dt)))
        self.slack = supply - np.cumsum(demand)
        prompts = jobs[~problem.is_decoding[jobs]]
        self.num_due = np.bincount(grid.deadline_idx[prompts], minlength=k + 1)
        self.margin = np.where(self.num_due > 0, self.slack - self.rounds, np.inf)
        self._refresh()
        return bool(np.all(self.rate >= -EPS) and np.all(self.margin >= -EPS))

    def _refresh(self) -> None:
        np.minimum.accumulate(self.margin[::-1], out=self._suffix_view)
        np.minimum.accumulate(self.rate[::-1], out=self.rate_suffix_min[-2::-1])

    def _rate_change(
        self, load: float, level: int, a: int, b: int
    ) -> tuple[float | FloatArray, IntArray | None]:
        """Rate change on [a, b) from adding a decoder, and the new tightest levels (or None).

        The common case, a decoder no tighter than those already active, is a scalar.
        """
        tight = self.tightest[a:b]
        if level >= tight.max():
            return -load, None
        new_tight = np.minimum(tight, level)
        change = self.base_s * (self.inv_periods[tight] - self.inv_periods[new_tight]) - load
        return change, new_tight

    def _supply_change(self, delta: float | FloatArray, a: int, b: int) -> FloatArray:
        """Change of cumulative supply at breakpoints a+1..b for a rate change on [a, b)."""
        if isinstance(delta, float):
            change: FloatArray = delta * (self.points[a + 1 : b + 1] - self.points[a])
            return change
        return np.cumsum(delta * self.dt[a:b], dtype=np.float64)

    def try_add(self, job: _Job, *, force: bool = False) -> bool:
        """Admit one job if the model stays feasible (or unconditionally); report whether.

        A job's prefill work is due at breakpoint d; its decode load covers [a, b). Prefilling
        jobs start decoding at their deadline (d == a); decoders have no work.
        """
        work, load, cost, level, d, a, b = job
        if not force and work > 0:
            own = self.slack[d] - self.rounds[d] - work  # its own deadline
            if work > self.suffix_min[d] + EPS or own < -EPS:
                return False
        if a >= b:  # no decode phase: only its prefill work
            self._commit_work(work, d)
            return True
        if not force and load > self.rate[a] + EPS:
            return False
        delta, new_tight = self._rate_change(load, level, a, b)
        new_rate = self.rate[a:b] + delta
        cum = self._supply_change(delta, a, b)
        shift = cum - cost
        if not force and (
            new_rate.min() < -EPS
            or (self.margin[a + 1 : b + 1] + shift).min() < work - EPS
            or self.suffix_min[b + 1] + cum[-1] < work - EPS
        ):
            return False
        self.rate[a:b] = new_rate
        if new_tight is not None:
            self.tightest[a:b] = new_tight
        self.load[a:b] += load
        self.active[level, a:b] += 1
        self._shift(cum, cost, a, b)
        self._commit_work(work, d)
        return True

    def _shift(self, cum: FloatArray, cost: float, a: int, b: int) -> None:
        """Apply a supply change `cum` at a+1..b (constant after) and a decode round `cost`."""
        self.slack[a + 1 : b + 1] += cum
        self.slack[b + 1 :] += cum[-1]
        self.rounds[a + 1 : b + 1] += cost
        self.margin[a + 1 : b + 1] += cum - cost
        self.margin[b + 1 :] += cum[-1]

    def _commit_work(self, work: float, d: int) -> None:
        """Add prefill work due at breakpoint d (negative: take it away)."""
        if work:
            self.slack[d:] -= work
            self.margin[d:] -= work
            self.num_due[d] += 1 if work > 0 else -1
            due = self.num_due[d] > 0
            self.margin[d] = self.slack[d] - self.rounds[d] if due else np.inf
        self._refresh()

    def remove(self, job: _Job) -> None:
        """Take an admitted job out again."""
        work, load, cost, level, d, a, b = job
        if a < b:
            self.active[level, a:b] -= 1
            self.load[a:b] -= load
            new_tight = np.argmax(self.active[:, a:b] > 0, axis=0)
            new_rate = 1.0 - self.base_s * self.inv_periods[new_tight] - self.load[a:b]
            cum = np.cumsum((new_rate - self.rate[a:b]) * self.dt[a:b])
            self.rate[a:b] = new_rate
            self.tightest[a:b] = new_tight
            self._shift(cum, -cost, a, b)
        self._commit_work(-work, d)


_Job = tuple[float, float, float, int, int, int, int]
"""(work, load, decode cost, level, deadline index, load start index, load end index)."""


def _reject_all(
    problem: PlanningProblem, candidates: Sequence[int], reason: Rejection
) -> dict[int, Rejection]:
    return {j: Rejection.LATE if problem.is_late[j] else reason for j in candidates}


class _Greedy:
    """EDF pass with Moore-Hodgson exchanges: a rejected job may replace a bulkier new one."""

    def __init__(self, problem: PlanningProblem, ledger: _Ledger, max_swaps: int) -> None:
        g = ledger.grid
        self.problem, self.ledger = problem, ledger
        self.jobs: list[_Job] = list(
            zip(
                problem.work_s.tolist(),
                problem.load.tolist(),
                problem.decode_cost_s.tolist(),
                problem.level.tolist(),
                g.deadline_idx.tolist(),
                g.start_idx.tolist(),
                g.end_idx.tolist(),
                strict=True,
            )
        )
        self.work, self.blocks = problem.work_s.tolist(), problem.num_blocks.tolist()
        self.admitted = problem.is_old.copy()
        self.new: list[int] = []
        self.num_blocks = int(problem.num_blocks[problem.is_old].sum())
        self.swaps_left = max_swaps
        self.num_swaps = 0

    def offer(self, j: int) -> Rejection | None:
        """Try to admit candidate j; return why not."""
        p = self.problem
        if self.num_blocks + self.blocks[j] <= p.kv_blocks_total:
            if self.ledger.try_add(self.jobs[j]):
                self._take(j)
                return None
            reason = Rejection.COMPUTE
        else:
            reason = Rejection.MEMORY
        return reason if self._swap(j, reason) is None else None

    def _take(self, j: int) -> None:
        self.admitted[j] = True
        self.new.append(j)
        self.num_blocks += self.blocks[j]

    def _swap(self, j: int, reason: Rejection) -> int | None:
        """Replace a bulkier new job by j if that fits; return the displaced job.

        Bulk is KV blocks for a memory reject and prefill work for a compute reject (the
        Moore-Hodgson rule: drop the longest job).
        """
        if self.swaps_left <= 0 or not self.new:
            return None
        size = self.blocks if reason is Rejection.MEMORY else self.work
        y = max(self.new, key=size.__getitem__)
        if size[y] <= size[j]:
            return None
        self.swaps_left -= 1
        return y if self._exchange(y, j) else None

    def _exchange(self, y: int, j: int) -> bool:
        """Swap admitted y for candidate j if the result is feasible."""
        if self.num_blocks - self.blocks[y] + self.blocks[j] > self.problem.kv_blocks_total:
            return False
        self.ledger.remove(self.jobs[y])
        if not self.ledger.try_add(self.jobs[j]):
            self.ledger.try_add(self.jobs[y], force=True)  # it fitted before: put it back
            return False
        self.num_swaps += 1
        self.admitted[y] = False
        self.new.remove(y)
        self.num_blocks -= self.blocks[y]
        self._take(j)
        return True


_RETRYABLE = (Rejection.COMPUTE, Rejection.MEMORY)
_WINDOW = 64
"""Candidates screened per vectorized step."""


def _screen(greedy: _Greedy, jobs: IntArray) -> tuple[list[bool], list[bool]]:
    """Which of `jobs` may fit now (necessary tests, vectorized), and which fail on memory.

    A job that fails may still be worth offering when an exchange could make room for it.
    """
    p, led, g = greedy.problem, greedy.ledger, greedy.ledger.grid
    work, d = p.work_s[jobs], g.deadline_idx[jobs]
    a, b = g.start_idx[jobs], g.end_idx[jobs]
    no_memory = greedy.num_blocks + p.num_blocks[jobs] > p.kv_blocks_total
    last = len(led.rate)
    # Decode load must fit the lowest rate of its window: exact when the window runs to the
    # end of the grid, else checked at both ends.
    lowest = np.where(
        b >= last,
        led.rate_suffix_min[np.minimum(a, last)],
        np.minimum(led.rate[np.minimum(a, last - 1)], led.rate[np.maximum(b - 1, 0)]),
    )
    fits = (
        ~no_memory
        & (work <= led.suffix_min[d] + EPS)
        & ((work <= 0) | (led.slack[d] - led.rounds[d] - work >= -EPS))
        & ((a >= b) | (p.load[jobs] <= lowest + EPS))
    )
    if greedy.swaps_left > 0 and greedy.new:
        new = np.asarray(greedy.new)
        fits |= np.where(
            no_memory,
            p.num_blocks[jobs] < p.num_blocks[new].max(),
            work < p.work_s[new].max(),
        )
    fits &= ~p.is_late[jobs]
    return fits.tolist(), no_memory.tolist()


def _offer_all(
    greedy: _Greedy, candidates: IntArray, reasons: dict[int, Rejection], num_old: int
) -> int:
    """One EDF pass over `candidates`; return the position of the last exchange (-1: none).

    Candidates are screened a window at a time, again after every admission or exchange;
    those that cannot fit are rejected without a full check.
    """
    p, last_swap = greedy.problem, -1
    for start in range(0, len(candidates), _WINDOW):
        window = candidates[start : start + _WINDOW]
        fits, no_memory = _screen(greedy, window)
        for i, j in enumerate(window.tolist()):
            if num_old + len(greedy.new) >= p.max_num_seqs:
                reasons.update(_reject_all(p, candidates[start + i :].tolist(), Rejection.SEQS))
                return last_swap
            if not fits[i]:
                reasons[j] = _bulk_reason(p, j, no_memory[i])
                continue
            state = (len(greedy.new), greedy.num_swaps)
            if (reason := greedy.offer(j)) is not None:
                reasons[j] = reason
            if greedy.num_swaps > state[1]:
                last_swap = start + i
            if (len(greedy.new), greedy.num_swaps) != state and i + 1 < len(window):
                rest = _screen(greedy, window[i + 1 :])
                fits[i + 1 :], no_memory[i + 1 :] = rest
    return last_swap


def _bulk_reason(problem: PlanningProblem, job: int, is_memory: bool) -> Rejection:
    if problem.is_late[job]:
        return Rejection.LATE
    return Rejection.MEMORY if is_memory else Rejection.COMPUTE


def admit_greedy(
    problem: PlanningProblem, config: PlannerConfig | None = None, max_swaps: int = 16
) -> Admission:
    """Admit candidates in EDF order while the fluid model stays feasible.

    Old jobs are always kept; if they alone are infeasible, nothing new is admitted. A rejected
    candidate may displace the bulkiest newly admitted job (Moore-Hodgson, optimal for the
    single-machine deadline problem), at most `max_swaps` times per plan.
    """
    del config
    ledger = _Ledger(problem, build_grid(problem))
    old = np.flatnonzero(problem.is_old)
    candidates = np.flatnonzero(~problem.is_old)
    is_old_ok = ledger.load_many(problem, old) and len(old) <= problem.max_num_seqs
    if not (is_old_ok and problem.num_blocks[old].sum() <= problem.kv_blocks_total):
        return Admission(
            problem.is_old.copy(),
            _reject_all(problem, candidates.tolist(), Rejection.OLD_INFEASIBLE),
            is_overloaded=True,
        )
    greedy = _Greedy(problem, ledger, max_swaps)
    reasons: dict[int, Rejection] = {}
    last_swap = _offer_all(greedy, candidates, reasons, len(old))
    # An exchange frees room that rejects judged before it may now use: offer those once more.
    # Rejects judged after the last exchange saw a state that has only filled up since.
    greedy.swaps_left = 0
    retry = [j for j in candidates[: max(last_swap, 0)].tolist() if reasons.get(j) in _RETRYABLE]
    for j in retry:
        del reasons[j]
    _offer_all(greedy, np.asarray(retry, dtype=np.int64), reasons, len(old))
    for j in candidates.tolist():
        if not greedy.admitted[j] and j not in reasons:
            reasons[j] = Rejection.COMPUTE  # displaced by a smaller job
    return Admission(greedy.admitted, reasons)


class FastPlanner:
    """The default planner: greedy EDF admission with an incremental feasibility simulation."""

    def admit(self, problem: PlanningProblem, config: PlannerConfig) -> Admission:
        """Admission decision for `problem` (see `admit_greedy`)."""
        return admit_greedy(problem, config)

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

"""Incremental feasibility bookkeeping of an admitted set on a problem's time grid."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agentflow.planner.feasibility import EPS
from agentflow.planner.grid import Grid, build_grid
from agentflow.planner.problem import PlanningProblem

__all__ = ["Job", "Ledger", "job_table", "least_prompt_margin_s"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Job = tuple[float, float, float, int, int, int, int]
"""(work, load, decode cost, level, deadline index, load start index, load end index)."""


class Ledger:
    """Running supply/demand totals of the admitted set on the problem's grid.

    Per interval: prefill supply rate, decode load, tightest active cadence. Per breakpoint:
    `slack` (supply minus EDF demand), `rounds` (the step that ends there: the problem's
    deadline overhead plus one decode round of the decoders active just before it), and
    `margin` = slack - rounds where an admitted prompt is due (+inf elsewhere), with its
    suffix minimum.
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
        self.rounds: FloatArray = np.full(k + 1, problem.deadline_overhead_s)
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
        # bincount rather than np.add.at: the same sums (up to the order of rounding), in far
        # fewer microseconds.

        def per_interval(values: npt.NDArray[np.float64]) -> FloatArray:
            diff = np.bincount(a, values, k + 1) - np.bincount(b, values, k + 1)
            return np.cumsum(diff[:k], dtype=np.float64)  # float even with no jobs

        levels = len(problem.periods_s)
        level = problem.level[jobs]
        starts = np.bincount(level * (k + 1) + a, minlength=levels * (k + 1))
        ends = np.bincount(level * (k + 1) + b, minlength=levels * (k + 1))
        self.active = np.cumsum((starts - ends).reshape(levels, k + 1)[:, :k], axis=1)
        self.active[-1, :] = 1
        self.tightest = np.argmax(self.active > 0, axis=0)
        self.load = per_interval(problem.load[jobs])
        self.rate = 1.0 - self.base_s * self.inv_periods[self.tightest] - self.load
        rounds = np.concatenate(([0.0], per_interval(problem.decode_cost_s[jobs])))
        self.rounds = problem.deadline_overhead_s + rounds - grid.overhead_credit(self.tightest)
        demand = np.bincount(grid.deadline_idx[jobs], problem.work_s[jobs], k + 1)
        supply = np.concatenate(([0.0], np.cumsum(self.rate * self.dt)))
        self.slack = supply - np.cumsum(demand, dtype=np.float64)
        prompts = jobs[~problem.is_decoding[jobs]]
        self.num_due = np.bincount(grid.deadline_idx[prompts], minlength=k + 1)
        self.margin = np.where(self.num_due > 0, self.slack - self.rounds, np.inf)
        self._refresh()
        return bool((self.rate >= -EPS).all() and (self.margin >= -EPS).all())

    @property
    def least_margin_s(self) -> float:
        """The smallest margin of an admitted prompt's deadline (+inf when none is due)."""
        return float(self.suffix_min[0])

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

    def try_add(self, job: Job, *, force: bool = False) -> bool:
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
        round_change = cost - self._credit_change(a, b, new_tight)
        shift = cum - round_change
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
        self._shift(cum, round_change, a, b)
        self._commit_work(work, d)
        return True

    def _credit_change(self, a: int, b: int, new_tight: IntArray | None) -> float | FloatArray:
        """Change of the deadline steps' overhead credit at a+1..b for new levels on [a, b)."""
        if new_tight is None:
            return 0.0
        old = self.grid.interval_credit(self.tightest[a:b], a)
        return self.grid.interval_credit(new_tight, a) - old

    def _shift(self, cum: FloatArray, round_change: float | FloatArray, a: int, b: int) -> None:
        """Apply a supply change `cum` at a+1..b (constant after) and a round change there."""
        self.slack[a + 1 : b + 1] += cum
        self.slack[b + 1 :] += cum[-1]
        self.rounds[a + 1 : b + 1] += round_change
        self.margin[a + 1 : b + 1] += cum - round_change
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

    def remove(self, job: Job) -> None:
        """Take an admitted job out again."""
        work, load, cost, level, d, a, b = job
        if a < b:
            self.active[level, a:b] -= 1
            self.load[a:b] -= load
            new_tight = np.argmax(self.active[:, a:b] > 0, axis=0)
            new_rate = 1.0 - self.base_s * self.inv_periods[new_tight] - self.load[a:b]
            cum = np.cumsum((new_rate - self.rate[a:b]) * self.dt[a:b])
            round_change = -cost - self._credit_change(a, b, new_tight)
            self.rate[a:b] = new_rate
            self.tightest[a:b] = new_tight
            self._shift(cum, round_change, a, b)
        self._commit_work(-work, d)


def job_table(problem: PlanningProblem, grid: Grid) -> list[Job]:
    """Each job of `problem` as the ledger takes it."""
    return list(
        zip(
            problem.work_s.tolist(),
            problem.load.tolist(),
            problem.decode_cost_s.tolist(),
            problem.level.tolist(),
            grid.deadline_idx.tolist(),
            grid.start_idx.tolist(),
            grid.end_idx.tolist(),
            strict=True,
        )
    )


def least_prompt_margin_s(problem: PlanningProblem, admitted: npt.NDArray[np.bool_]) -> float:
    """`Ledger.least_margin_s` of the admitted set, from a fresh ledger.

    Seconds of prefill supply that could go elsewhere before some admitted prompt would miss
    its deadline; negative when the set is infeasible.
    """
    ledger = Ledger(problem, build_grid(problem))
    ledger.load_many(problem, np.flatnonzero(admitted))
    return ledger.least_margin_s

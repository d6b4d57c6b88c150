"""Time grid of a planning problem: every instant where the fluid model can change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentflow.planner.problem import PlanningProblem

__all__ = ["Grid", "build_grid"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Grid:
    """Sorted breakpoints (seconds from now) and each job's breakpoint indices."""

    points_s: FloatArray
    """Breakpoints, starting at 0; interval i is [points_s[i], points_s[i + 1])."""
    dt_s: FloatArray
    """Interval lengths."""
    deadline_idx: IntArray
    start_idx: IntArray
    end_idx: IntArray
    idle_rate: float
    """Prefill supply rate with no decoder active."""
    inv_periods: FloatArray
    """1 / cadence per level (the last level is idle)."""
    base_s: float
    """Per-step overhead."""
    overlap_s: FloatArray
    """Per interval: how much of the last `base_s` before its end it covers (min(dt, base))."""

    def overhead_credit(self, tightest: IntArray) -> FloatArray:
        """Per breakpoint: the deadline step's overhead already paid above the idle share.

        The step that ends at a breakpoint lasts at least `base_s`, so it covers the last
        `overlap_s` of the interval before the breakpoint, where the fluid rate charged overhead
        at that interval's tightest cadence instead of the idle one. The problem's
        `deadline_overhead_s` assumes the idle share throughout; this is what it overcharges.
        A tighter cadence raises the credit by less than it lowers the supply before the
        breakpoint, so adding a decoder never raises a margin.
        """
        return np.concatenate(([0.0], self.interval_credit(tightest)))

    def interval_credit(self, tightest: IntArray, start: int = 0) -> FloatArray:
        """`overhead_credit` at the end of intervals start, start + 1, ... (levels `tightest`)."""
        extra = self.inv_periods[tightest] - self.inv_periods[-1]
        overlap = self.overlap_s[start : start + len(tightest)]
        credit: FloatArray = self.base_s * overlap * extra
        return credit

    @property
    def num_intervals(self) -> int:
        """Number of intervals."""
        return len(self.dt_s)


def build_grid(problem: PlanningProblem) -> Grid:
    """Breakpoints of all jobs' deadlines and load windows, so any subset fits on them.

    After the last deadline or load start, T, no deadline is checked and load only falls, so
    the rate just after T is the lowest of the tail: every load end past T is moved to one
    point past T. This keeps the grid small without changing which sets are feasible.
    """
    last_s = float(max(problem.deadline_s.max(initial=0.0), problem.load_start_s.max(initial=0.0)))
    tail_s = last_s + 1.0
    end_s = np.minimum(problem.load_end_s, tail_s)
    points = np.unique(np.concatenate(([0.0], problem.deadline_s, problem.load_start_s, end_s)))
    dt = np.diff(points)
    inv_periods = 1.0 / problem.periods_s
    return Grid(
        points_s=points,
        dt_s=dt,
        deadline_idx=np.searchsorted(points, problem.deadline_s),
        start_idx=np.searchsorted(points, problem.load_start_s),
        end_idx=np.searchsorted(points, end_s),
        idle_rate=1.0 - problem.base_s * float(inv_periods[-1]),
        inv_periods=inv_periods,
        base_s=problem.base_s,
        overlap_s=np.minimum(dt, problem.base_s),
    )

"""How long one step may be, from the SLO budgets of recent arrivals."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from agentflow.planner.config import PlannerConfig
from agentflow.planner.plan import Planner
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import Rejection, StepPlan

__all__ = ["StepBound", "plan_within_bound"]


class StepBound:
    """The longest step to plan, kept up to date as requests arrive.

    A request that arrives during a step waits for its end and then needs a step of its own,
    so a step longer than half the tightest TTFT in the mix costs the next short prompt its
    first token whatever the plan does; a step longer than two of the tightest TPOT leaves
    decoders no room to catch up. The bound looks at the last `window` arrivals, so it follows
    the mix without being pinned by one odd request forever.

    Args:
        horizon_s: the longest step ever (`PlannerConfig.horizon_s`).
        min_step_s: the shortest bound (a step must hold more than its fixed overhead).
        window: arrivals remembered.
    """

    def __init__(self, horizon_s: float, min_step_s: float, window: int = 64) -> None:
        self.horizon_s = horizon_s
        self.min_step_s = min_step_s
        self._budgets: deque[tuple[float, float]] = deque(maxlen=window)
        self.longest_step_s = horizon_s
        """The current bound, seconds."""
        self._applied: tuple[PlannerConfig, PlannerConfig] | None = None

    def set_min_step(self, min_step_s: float) -> None:
        """A new shortest bound (the engine's fixed overhead was re-measured)."""
        self.min_step_s = min_step_s
        if self._budgets:
            self._update()

    def observe(self, ttft_s: float, tpot_s: float) -> None:
        """Take one arrival's budgets into account."""
        self._budgets.append((ttft_s, tpot_s))
        self._update()

    def _update(self) -> None:
        tightest_ttft_s = min(ttft for ttft, _ in self._budgets)
        tightest_tpot_s = min(tpot for _, tpot in self._budgets)
        longest_s = min(0.5 * tightest_ttft_s, 2 * tightest_tpot_s, self.horizon_s)
        self.longest_step_s = max(longest_s, self.min_step_s)

    def applied_to(self, config: PlannerConfig) -> PlannerConfig:
        """`config` with its horizon set to the bound; copied only when the bound moves."""
        if self._applied is not None:
            source, bounded = self._applied
            if source is config and bounded.horizon_s == self.longest_step_s:
                return bounded
        bounded = (
            config
            if config.horizon_s == self.longest_step_s
            else config.model_copy(update={"horizon_s": self.longest_step_s})
        )
        self._applied = (config, bounded)
        return bounded


def plan_within_bound(
    planner: Planner,
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    bounded: PlannerConfig,
    widest: PlannerConfig,
) -> StepPlan:
    """Plan with steps bounded by `StepBound`, and go past the bound only to admit more.

    The bound protects the first token of a short prompt that may arrive during the step; it
    costs overhead, since every step pays its fixed cost. When the bounded plan turns a
    request away, or finds the admitted set itself infeasible, longer steps (up to `widest`'s
    horizon) are tried: their plan is kept if it is feasible and admits more requests, or
    the bounded one was overloaded. A request known to be waiting outweighs one that might
    arrive.

    Args:
        planner: the planner to call (once, or twice when the bound turns a request away).
        now_s: current time.
        running: requests in the engine's running set.
        waiting: requests not started yet.
        predictor: step-time model of the engine.
        bounded: the config with the horizon `StepBound` allows.
        widest: the same config with the longest horizon ever allowed.
    """
    plan = planner.plan(now_s, running, waiting, predictor, bounded)
    # Longer steps only add compute: a request turned away for memory, the sequence cap or
    # lateness stays out whatever the step length, so it costs no second plan.
    short_of_compute = any(r is Rejection.COMPUTE for r in plan.reason_by_id.values())
    if bounded.horizon_s >= widest.horizon_s or not (short_of_compute or plan.is_overloaded):
        return plan
    wide = planner.plan(now_s, running, waiting, predictor, widest)
    if wide.is_overloaded:
        return plan
    if plan.is_overloaded or len(wide.admitted_ids) > len(plan.admitted_ids):
        return wide
    return plan

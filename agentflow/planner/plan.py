"""The planner seam: the `Planner` protocol, the factory, and the `plan` entry point."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from agentflow.errors import ConfigError
from agentflow.planner.config import PlannerConfig
from agentflow.planner.dp import ExactPlanner
from agentflow.planner.fast import FastPlanner
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import StepPlan

__all__ = ["Planner", "make_planner", "plan"]


class Planner(Protocol):
    """Decides admissions and the next step's budgets. Called once per engine step.

    Contract: `plan` is pure and deterministic. It reads no clock, does no I/O, and keeps no
    state between calls; everything it knows comes from its arguments. It never drops a
    request with `is_admitted=True` from `admitted_ids`, and it never raises on a feasible or
    infeasible workload (an overload shows as `StepPlan.is_overloaded`).
    """

    def plan(
        self,
        now_s: float,
        running: Sequence[PlanRequest],
        waiting: Sequence[PlanRequest],
        predictor: StepTimePredictor,
        config: PlannerConfig,
    ) -> StepPlan:
        """Plan the next step for the engine's running and waiting requests at `now_s`."""
        ...


_PLANNERS: dict[str, Callable[[], Planner]] = {"fast": FastPlanner, "exact": ExactPlanner}


def make_planner(name: str) -> Planner:
    """The planner called `name` ("fast" or "exact").

    Raises:
        ConfigError: unknown name.
    """
    try:
        return _PLANNERS[name]()
    except KeyError:
        raise ConfigError(
            f"planner: unknown planner {name!r}; choose one of {sorted(_PLANNERS)}"
        ) from None


def plan(
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> StepPlan:
    """Plan the next engine step with the planner `config.planner` names.

    Args:
        now_s: current time, on the clock of the requests' `arrival_s`.
        running: requests in the engine's running set (admitted or best-effort).
        waiting: requests not started yet (new arrivals, best-effort, preempted).
        predictor: step-time model of the engine.
        config: engine limits and planner settings.

    Returns:
        Admissions (old ones kept), best-effort requests, and this step's budgets.
    """
    return make_planner(config.planner).plan(now_s, running, waiting, predictor, config)

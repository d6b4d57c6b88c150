"""The planning round every planner shares: build the problem, admit, lay out the step."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentflow.planner.batch import build_step_plan
from agentflow.planner.config import PlannerConfig
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem, build_problem
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import Admission, StepPlan

__all__ = ["AdmitFn", "run_planning_round"]

AdmitFn = Callable[[PlanningProblem, PlannerConfig], Admission]


def run_planning_round(
    admit: AdmitFn,
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> StepPlan:
    """One plan: jobs from requests, an admission decision, then this step's budgets."""
    problem = build_problem(now_s, running, waiting, predictor, config)
    admission = admit(problem, config)
    return build_step_plan(problem, admission, predictor, config)

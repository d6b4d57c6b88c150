"""SLO planner: per-step admission and token budgets for multi-SLO serving (SLOs-Serve).

Pure Python + numpy; never imports vllm, torch or ray. The engine mixin, the simulator and the
router all call `plan(now_s, running, waiting, predictor, config) -> StepPlan`.
"""

from __future__ import annotations

from agentflow.planner.config import PlannerConfig, SpecConfig
from agentflow.planner.dp import ExactPlanner
from agentflow.planner.fast import FastPlanner
from agentflow.planner.fitting import evaluate, mape, r2_score
from agentflow.planner.horizon import StepBound, plan_within_bound
from agentflow.planner.overload import demoted, jobs_to_shed
from agentflow.planner.plan import Planner, make_planner, plan
from agentflow.planner.predictor import (
    AffinePiece,
    StepSample,
    StepTimePredictor,
    chunk_context_tokens,
)
from agentflow.planner.request import PlanRequest
from agentflow.planner.spare import SpareBudget, spare_step_limit_s
from agentflow.planner.spec import choose_spec_lengths, expected_tokens
from agentflow.planner.steady import SteadyPlanner
from agentflow.planner.step_plan import Rejection, StepPlan
from agentflow.planner.tiers import derive_tiers, tier_for_slack

__all__ = [
    "AffinePiece",
    "ExactPlanner",
    "FastPlanner",
    "PlanRequest",
    "Planner",
    "PlannerConfig",
    "Rejection",
    "SpareBudget",
    "SpecConfig",
    "SteadyPlanner",
    "StepBound",
    "StepPlan",
    "StepSample",
    "StepTimePredictor",
    "choose_spec_lengths",
    "chunk_context_tokens",
    "demoted",
    "derive_tiers",
    "evaluate",
    "expected_tokens",
    "jobs_to_shed",
    "make_planner",
    "mape",
    "plan",
    "plan_within_bound",
    "r2_score",
    "spare_step_limit_s",
    "tier_for_slack",
]

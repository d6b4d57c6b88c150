"""The step bound follows the tightest budgets among recent arrivals."""

from __future__ import annotations

import pytest

from agentflow.planner import StepBound, make_planner, plan, plan_within_bound

from .factories import PREDICTOR, make_config, make_request


def test_no_arrival_yet_leaves_the_horizon():
    assert StepBound(horizon_s=1.0, min_step_s=0.03).longest_step_s == 1.0


def test_half_the_tightest_ttft_or_two_of_the_tightest_tpot_whichever_is_shorter():
    bound = StepBound(horizon_s=1.0, min_step_s=0.03)
    bound.observe(ttft_s=0.6, tpot_s=0.2)
    assert bound.longest_step_s == pytest.approx(0.3)  # TTFT/2 < 2 TPOT
    bound.observe(ttft_s=2.0, tpot_s=0.05)
    assert bound.longest_step_s == pytest.approx(0.1)  # now 2 TPOT is shorter


def test_the_bound_never_drops_below_the_minimum_step():
    bound = StepBound(horizon_s=1.0, min_step_s=0.03)
    bound.observe(ttft_s=0.01, tpot_s=0.005)
    assert bound.longest_step_s == 0.03


def test_a_slower_measured_engine_raises_the_minimum_step():
    bound = StepBound(horizon_s=1.0, min_step_s=0.03)
    bound.observe(ttft_s=0.4, tpot_s=0.05)
    assert bound.longest_step_s == 0.1
    bound.set_min_step(0.3)  # the engine's empty step turned out 150 ms
    assert bound.longest_step_s == 0.3


def test_a_tight_request_stops_counting_once_it_leaves_the_window():
    bound = StepBound(horizon_s=1.0, min_step_s=0.03, window=2)
    bound.observe(ttft_s=0.1, tpot_s=1.0)
    bound.observe(ttft_s=1.0, tpot_s=1.0)
    assert bound.longest_step_s == pytest.approx(0.05)
    bound.observe(ttft_s=1.0, tpot_s=1.0)
    assert bound.longest_step_s == pytest.approx(0.5)


class _CountingPlanner:
    def __init__(self) -> None:
        self.horizons: list[float] = []

    def plan(self, now_s, running, waiting, predictor, config):
        self.horizons.append(config.horizon_s)
        return make_planner("fast").plan(now_s, running, waiting, predictor, config)


def _bounded(bound_s: float):
    return make_config(horizon_s=1.0).model_copy(update={"horizon_s": bound_s})


def _plan_waiting(request, bound_s: float, now_s: float = 0.0):
    """Plan one waiting request within `bound_s` (widest horizon 1 s); the plan and the
    horizons the planner was called with."""
    planner = _CountingPlanner()
    step = plan_within_bound(
        planner, now_s, [], [request], PREDICTOR, _bounded(bound_s), make_config(horizon_s=1.0)
    )
    return step, planner.horizons


def test_a_request_short_steps_would_turn_away_is_admitted_with_longer_steps():
    # Short steps pay their fixed cost many times over a long prompt: within its TTFT it only
    # fits in a few long steps.
    ttft_s = 1.3 * PREDICTOR.isolated_prefill_s(1500)
    prompt = make_request("long", num_prompt_tokens=1500, ttft_s=ttft_s)
    bound_s = 2.2 * PREDICTOR.base_s
    assert plan(0.0, [], [prompt], PREDICTOR, _bounded(bound_s)).best_effort_ids == ("long",)
    step, horizons = _plan_waiting(prompt, bound_s)
    assert step.admitted_ids == ("long",)
    assert horizons == [bound_s, 1.0]


def test_the_bounded_plan_stands_when_it_admits_everyone():
    step, horizons = _plan_waiting(make_request("short", num_prompt_tokens=64, ttft_s=1.0), 0.1)
    assert step.admitted_ids == ("short",)
    assert horizons == [0.1]


def test_longer_steps_that_admit_no_more_leave_the_bounded_plan():
    # Infeasible at any step length: its TTFT is below its isolated prefill time.
    hopeless = make_request("x", num_prompt_tokens=1500, ttft_s=0.01)
    step, horizons = _plan_waiting(hopeless, 0.1)
    assert step.best_effort_ids == ("x",)
    assert step.step_time_budget_s <= 0.1
    assert horizons == [0.1, 1.0]


def test_a_request_already_late_does_not_cost_a_second_plan():
    late = make_request("late", arrival_s=0.0, ttft_s=0.2)
    step, horizons = _plan_waiting(late, 0.1, now_s=1.0)
    assert step.best_effort_ids == ("late",)
    assert horizons == [0.1]


def test_a_request_turned_away_for_memory_does_not_cost_a_second_plan():
    big = make_request("big", num_prompt_tokens=256, max_output_tokens=64)
    planner = _CountingPlanner()
    config = make_config(kv_blocks_total=4)  # 20 blocks needed
    step = plan_within_bound(
        planner, 0.0, [], [big], PREDICTOR, config.model_copy(update={"horizon_s": 0.1}), config
    )
    assert step.best_effort_ids == ("big",)
    assert planner.horizons == [0.1]

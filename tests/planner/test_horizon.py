"""The step bound follows the tightest budgets among recent arrivals."""

from __future__ import annotations

import pytest

from agentflow.planner import StepBound


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


def test_a_tight_request_stops_counting_once_it_leaves_the_window():
    bound = StepBound(horizon_s=1.0, min_step_s=0.03, window=2)
    bound.observe(ttft_s=0.1, tpot_s=1.0)
    bound.observe(ttft_s=1.0, tpot_s=1.0)
    assert bound.longest_step_s == pytest.approx(0.05)
    bound.observe(ttft_s=1.0, tpot_s=1.0)
    assert bound.longest_step_s == pytest.approx(0.5)

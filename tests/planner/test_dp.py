import pytest
from hypothesis import given, settings

from agentflow.planner import ExactPlanner
from agentflow.planner.dp import solve_dp
from agentflow.planner.feasibility import check_admission
from agentflow.planner.problem import build_problem

from .factories import PREDICTOR, instance_strategy, make_config, make_decoder, make_request
from .oracle import best_admitted_count


@settings(max_examples=300, deadline=None, database=None)
@given(instance_strategy(max_running=3, max_waiting=4))
def test_exact_matches_the_brute_force_oracle_on_tiny_instances(instance):
    now, running, waiting, config = instance
    problem = build_problem(now, running, waiting, PREDICTOR, config)
    outcome = solve_dp(problem)
    expected = best_admitted_count(problem)
    if expected is None:
        assert outcome.admission.is_overloaded
    else:
        assert int(outcome.admission.admitted.sum()) == expected
        assert check_admission(problem, outcome.admission.admitted).is_feasible


def test_exact_prefers_two_small_requests_over_one_large():
    # One prompt that fills the memory on its own, two that fit together.
    large = make_request("large", ttft_s=5.0, num_prompt_tokens=1200)
    small = [make_request(f"s{i}", ttft_s=6.0, num_prompt_tokens=500) for i in range(2)]
    config = make_config(kv_blocks_total=80)
    problem = build_problem(0.0, [], [large, *small], PREDICTOR, config)
    assert int(solve_dp(problem).admission.admitted.sum()) == 2


def test_transition_cap_reports_an_unfinished_search():
    waiting = [make_request(f"r{i}", ttft_s=2.0 + i) for i in range(6)]
    problem = build_problem(0.0, [], waiting, PREDICTOR, make_config())
    outcome = solve_dp(problem, max_transitions=3)
    assert not outcome.is_complete
    assert outcome.num_transitions > 3


def test_exact_planner_falls_back_to_fast_past_its_cap_and_keeps_old_requests():
    now = 5.0
    old = make_decoder("old", now)
    waiting = [make_request(f"r{i}", arrival_s=now, ttft_s=2.0 + i) for i in range(6)]
    step = ExactPlanner(max_transitions=2).plan(now, [old], waiting, PREDICTOR, make_config())
    assert "old" in step.admitted_ids
    assert len(step.newly_admitted_ids) > 0
    assert not step.is_complete


@pytest.mark.parametrize("cap", [None, 10_000])
def test_exact_planner_is_selected_by_config(cap):
    step = ExactPlanner(max_transitions=cap).plan(
        0.0, [], [make_request("r")], PREDICTOR, make_config(planner="exact")
    )
    assert step.admitted_ids == ("r",)

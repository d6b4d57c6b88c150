"""Giving up admitted requests: when an SLO is lost, and what to shed from an infeasible set."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from agentflow.planner import PlanRequest, jobs_to_shed
from agentflow.planner.fast import admit_greedy
from agentflow.planner.feasibility import check_admission
from agentflow.planner.problem import build_problem

from .factories import PREDICTOR, instance_strategy, make_config, make_decoder, make_request


def test_a_waiting_request_is_lost_once_its_ttft_with_tolerance_has_passed():
    request = make_request(arrival_s=0.0, ttft_s=1.0)
    assert not request.has_missed(1.04)
    assert request.has_missed(1.06)


def test_a_late_first_token_loses_the_request_for_good():
    request = make_request(
        arrival_s=0.0, ttft_s=1.0, num_computed_tokens=256, num_output_tokens=1, first_token_s=1.2
    )
    assert request.has_missed(1.3)


def _early_decoder(num_output_tokens: int, max_output_tokens: int) -> PlanRequest:
    """Arrived at 0 with a 1 s TTFT and a 50 ms TPOT; first token at 0.5 s (t0 = 1.0)."""
    return make_request(
        arrival_s=0.0,
        ttft_s=1.0,
        tpot_s=0.05,
        num_computed_tokens=256,
        num_output_tokens=num_output_tokens,
        max_output_tokens=max_output_tokens,
        first_token_s=0.5,
    )


def test_a_decoder_is_lost_only_when_its_next_checked_token_is_overdue():
    # token 20 is due by t0 + 19 * 0.05 * 1.05 = 1.9975
    decoder = _early_decoder(num_output_tokens=5, max_output_tokens=64)
    assert not decoder.has_missed(1.99)
    assert decoder.has_missed(2.0)


def test_a_decoder_past_its_last_checked_token_cannot_miss_any_more():
    assert not _early_decoder(num_output_tokens=21, max_output_tokens=30).has_missed(100.0)


def test_a_feasible_admitted_set_sheds_nothing():
    now = 5.0
    decoders = [make_decoder(f"d{i}", now) for i in range(4)]
    assert jobs_to_shed(now, decoders, [], PREDICTOR, make_config()) == ()


def test_an_overloaded_admitted_set_sheds_until_the_rest_is_feasible():
    now = 5.0
    decoders = [make_decoder(f"d{i}", now, tpot_s=0.05) for i in range(64)]
    config = make_config()
    shed = set(jobs_to_shed(now, decoders, [], PREDICTOR, config))
    assert 0 < len(shed) < len(decoders)
    kept = [d for d in decoders if d.request_id not in shed]
    problem = build_problem(now, kept, [], PREDICTOR, config)
    assert check_admission(problem, problem.is_old).is_feasible


def test_shedding_gives_up_one_bulky_prompt_rather_than_several_short_ones():
    # All admitted, all due within 0.5 s: the 1,000-token prompt (0.42 s alone) fits on its
    # own and comes first in deadline order, but then none of the short ones fits.
    now, config = 0.0, make_config()
    bulky = make_request("bulky", ttft_s=0.45, num_prompt_tokens=1000, is_admitted=True)
    short = [
        make_request(f"s{i}", ttft_s=0.5, num_prompt_tokens=64, is_admitted=True) for i in range(4)
    ]
    assert jobs_to_shed(now, [], [bulky], PREDICTOR, config) == ()
    assert jobs_to_shed(now, [], [bulky, *short], PREDICTOR, config) == ("bulky",)


@settings(max_examples=100, deadline=None, database=None)
@given(instance_strategy(max_running=12, max_waiting=12))
def test_what_is_kept_after_shedding_is_always_feasible(instance):
    now, running, waiting, config = instance
    shed = set(jobs_to_shed(now, running, waiting, PREDICTOR, config))
    old = [r for r in [*running, *waiting] if r.is_admitted]
    assert shed <= {r.request_id for r in old}
    problem = build_problem(now, running, waiting, PREDICTOR, config)
    kept = problem.is_old & ~np.isin([r.request_id for r in problem.requests], list(shed))
    assert check_admission(problem, kept).is_feasible
    if not shed:
        assert not admit_greedy(problem, config).is_overloaded

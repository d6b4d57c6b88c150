"""Speculative decoding in the simulator: verify lengths, drafter cost, acceptance draws."""

from dataclasses import replace

import numpy as np
import pytest

from agentflow.engine.sim import POLICY_NAMES, PolicyOptions, get_profile, simulate
from agentflow.engine.sim.profiles import Drafter
from agentflow.errors import ConfigError
from tests.sim.factories import make_request, make_trace

PROFILE = get_profile("opt-13b-a100-tp2")
SPEC = PolicyOptions(speculation=True, fixed_spec_len=4)


def _with_acceptance(acceptance: float):
    assert PROFILE.drafter is not None
    return replace(PROFILE, drafter=replace(PROFILE.drafter, acceptance=acceptance))


def _steps(outcome) -> list[int]:
    """Tokens per step: tokens that share a timestamp came from one verify."""
    _, counts = np.unique(np.asarray(outcome.token_times_s), return_counts=True)
    return counts.tolist()


def test_always_accepted_drafts_give_the_whole_verify_each_step():
    spec = make_request(prompt=200, output=41)
    (outcome,) = simulate([spec], "vllm", _with_acceptance(1.0), SPEC)
    assert _steps(outcome) == [1] + [4] * 10  # prefill's token, then 4 per verify
    predictor = PROFILE.predictor()
    step_s = outcome.token_times_s[1] - outcome.token_times_s[0]
    expected = predictor.step_time_s(0, 1, 201, num_spec_tokens=3, num_draft_steps=3)
    assert step_s == pytest.approx(expected)
    assert step_s > predictor.step_time_s(0, 1, 201)  # the drafter and verify tokens cost


def test_never_accepted_drafts_give_one_token_per_step():
    (outcome,) = simulate([make_request(output=20)], "vllm", _with_acceptance(0.0), SPEC)
    assert _steps(outcome) == [1] * 20


def test_acceptance_draws_are_seeded_and_yield_between_one_and_the_verify_length():
    trace = make_trace(40, seed=2)
    first = simulate(trace, "vllm", PROFILE, SPEC)
    assert first == simulate(trace, "vllm", PROFILE, SPEC)
    per_step = [n for o in first for n in _steps(o)[1:]]
    assert set(per_step) <= {1, 2, 3, 4}
    assert {1, 4} <= set(per_step)
    for spec, outcome in zip(trace, first, strict=True):
        assert len(outcome.token_times_s) == spec.num_output_tokens  # never overshoots


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_finishes_every_request_with_speculation(policy):
    trace = make_trace(60, seed=1)
    outcomes = simulate(trace, policy, PROFILE, SPEC)
    assert all(o.finish_reason.value == "length" for o in outcomes)


def test_agentflow_verifies_drafts_only_when_speculation_is_on():
    trace = make_trace(60, seed=1, rate_rps=6.0, tpot_choices=(0.05,))
    outcomes = simulate(trace, "agentflow", PROFILE, SPEC)
    assert any(max(_steps(o)) > 1 for o in outcomes)
    plain = simulate(trace, "agentflow", PROFILE)
    assert all(max(_steps(o)) == 1 for o in plain)


def test_a_profile_without_a_draft_model_cannot_speculate():
    no_drafter = get_profile("opt-13b-h100")
    assert no_drafter.drafter is None
    with pytest.raises(ConfigError, match="no draft model"):
        simulate([make_request()], "vllm", no_drafter, SPEC)


def test_drafter_fields_come_from_the_authors_profile():
    assert PROFILE.drafter == Drafter(step_s=3.34e-3, acceptance=0.6, max_spec_len=8)

import pytest

from agentflow.engine.sim import (
    POLICY_NAMES,
    FinishReason,
    Lane,
    PolicyOptions,
    StopRule,
    get_profile,
    simulate,
)
from tests.sim.factories import PROFILE, make_request, make_trace

TWO_GPU = get_profile("opt-13b-a100-tp2")


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_simulation_is_deterministic_given_a_seed(policy):
    trace = make_trace(80, seed=3)
    options = PolicyOptions(jitter=0.05, seed=7)
    first = simulate(trace, policy, TWO_GPU, options)
    second = simulate(trace, policy, TWO_GPU, options)
    assert first == second
    other_seed = simulate(trace, policy, TWO_GPU, PolicyOptions(jitter=0.05, seed=8))
    assert [o.token_times_s for o in other_seed] != [o.token_times_s for o in first]


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_request_gets_exactly_its_tokens_in_order(policy):
    trace = make_trace(60, seed=1)
    outcomes = simulate(trace, policy, TWO_GPU)
    assert [o.request_id for o in outcomes] == [s.request_id for s in trace]
    for spec, outcome in zip(trace, outcomes, strict=True):
        assert outcome.finish_reason is FinishReason.LENGTH
        assert len(outcome.token_times_s) == spec.num_output_tokens
        assert list(outcome.token_times_s) == sorted(outcome.token_times_s)
        assert outcome.token_times_s[0] > spec.arrival_s
        assert outcome.lane is not None


def test_isolated_request_takes_the_predicted_times():
    spec = make_request(prompt=1000, output=5)
    (outcome,) = simulate([spec], "vllm", PROFILE)
    predictor = PROFILE.predictor()
    assert outcome.token_times_s[0] == pytest.approx(predictor.isolated_prefill_s(1000))
    decode_s = predictor.step_time_s(0, 1, 1001)
    assert outcome.token_times_s[1] - outcome.token_times_s[0] == pytest.approx(decode_s)
    assert outcome.slo_met


def test_follow_up_arrives_a_delay_after_its_parent_finishes():
    parent = make_request("p", program_id="prog", output=10)
    child = make_request("c", program_id="prog", after_id="p", delay_s=0.5, arrival_s=99.0)
    outcomes = {o.request_id: o for o in simulate([parent, child], "vllm", PROFILE)}
    parent_end_s = outcomes["p"].finish_s
    assert parent_end_s is not None
    assert outcomes["c"].arrival_s == pytest.approx(parent_end_s + 0.5)


def test_unreleased_follow_up_and_timeout_still_end_with_a_reason():
    parent = make_request("p", output=2000, tpot_s=0.05)
    child = make_request("c", after_id="p")
    outcomes = simulate([parent, child], "vllm", PROFILE, stop=StopRule(max_time_s=1.0))
    assert {o.finish_reason for o in outcomes} == {FinishReason.TIMEOUT}
    assert not any(o.slo_met for o in outcomes)


def test_too_large_request_is_finished_with_a_reason():
    tiny = PROFILE.with_limits(kv_blocks_total=10)
    (outcome,) = simulate([make_request(prompt=500)], "vllm", tiny)
    assert outcome.finish_reason is FinishReason.TOO_LARGE
    assert not outcome.slo_met


def test_early_stop_when_misses_exceed_the_budget():
    # 3x the load this engine can carry: misses pile up and the run stops early.
    trace = make_trace(300, rate_rps=60.0, tpot_choices=(0.03,), ttft_slowdown=1.5)
    outcomes = simulate(trace, "vllm", PROFILE, stop=StopRule(max_missed_programs=10))
    reasons = {o.finish_reason for o in outcomes}
    assert FinishReason.STOPPED in reasons


def test_agentflow_marks_declined_requests_best_effort_and_still_serves_them():
    trace = make_trace(200, rate_rps=40.0, tpot_choices=(0.05,), ttft_slowdown=3.0)
    outcomes = simulate(trace, "agentflow", PROFILE)
    best_effort = [o for o in outcomes if o.lane is Lane.BEST_EFFORT]
    assert best_effort, "an overloaded engine must decline some requests"
    assert all(o.finish_reason is FinishReason.LENGTH for o in outcomes)
    assert not any(o.slo_met for o in best_effort)

"""Prefix caching in the simulator: a follow-up reuses the KV its parent left behind."""

from dataclasses import replace

import pytest

from agentflow.engine.sim import POLICY_NAMES, Lane, PolicyOptions, get_profile, simulate
from agentflow.planner import chunk_context_tokens
from tests.sim.factories import make_request

PROFILE = get_profile("opt-13b-a100-tp2")

BLOCK = PROFILE.block_size


def _parent_and_child(shared: int, *, child_prompt: int = 1300, **child_fields):
    parent = make_request("p", program_id="prog", prompt=1000, output=10)
    child = make_request(
        "c", program_id="prog", prompt=child_prompt, output=10, after_id="p", **child_fields
    )
    return parent, replace(child, num_shared_prefix_tokens=shared)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_a_follow_up_reuses_its_parents_prompt_kv_in_whole_blocks(policy):
    outcomes = {o.request_id: o for o in simulate(_parent_and_child(995), policy, PROFILE)}
    assert outcomes["p"].num_cached_tokens == 0
    assert outcomes["c"].num_cached_tokens == 995 // BLOCK * BLOCK
    assert outcomes["c"].finish_reason.value == "length"


def test_the_follow_up_prefills_only_what_the_cache_lacks():
    outcomes = {o.request_id: o for o in simulate(_parent_and_child(995), "vllm", PROFILE)}
    child = outcomes["c"]
    cached = 995 // BLOCK * BLOCK
    rest = 1300 - cached
    expected_s = PROFILE.predictor().step_time_s(
        rest, 0, num_prefill_pairs=chunk_context_tokens(cached, rest)
    )
    assert child.token_times_s[0] - child.arrival_s == pytest.approx(expected_s)
    assert expected_s < 0.5 * PROFILE.predictor().isolated_prefill_s(1300)


def test_nothing_is_reused_without_a_shared_prefix():
    outcomes = {o.request_id: o for o in simulate(_parent_and_child(0), "vllm", PROFILE)}
    assert outcomes["c"].num_cached_tokens == 0


def test_the_last_prompt_token_is_always_computed():
    # The child's whole prompt is cached: the block holding its last token is recomputed.
    trace = _parent_and_child(995, child_prompt=992)
    outcomes = {o.request_id: o for o in simulate(trace, "vllm", PROFILE)}
    assert outcomes["c"].num_cached_tokens == 991 // BLOCK * BLOCK


def test_blocks_reallocated_since_the_parent_finished_are_lost():
    # 200 blocks in all. Two 3000-token requests run after the parent and before the child:
    # together they take more blocks than were queued in front of the parent's, and all of
    # the parent's; the child finds nothing. One alone takes the tail of the parent's blocks
    # (freed tail first) and leaves the leading ones.
    small = replace(PROFILE, kv_blocks_total=200)

    def child_cached(num_fillers: int) -> int:
        parent, child = _parent_and_child(995, delay_s=30.0)
        fillers = [
            make_request(f"f{i}", arrival_s=5.0 + 10.0 * i, prompt=3000, output=20, ttft_s=9.0)
            for i in range(num_fillers)
        ]
        outcomes = {o.request_id: o for o in simulate([parent, *fillers, child], "vllm", small)}
        return outcomes["c"].num_cached_tokens

    one, two = child_cached(1), child_cached(2)
    assert 0 < one < 995 // BLOCK * BLOCK
    assert two == 0


def test_a_follow_up_goes_to_the_replica_that_served_its_parent():
    # Round robin alone would send the child to the second replica, where nothing is cached.
    trace = _parent_and_child(995)
    outcomes = {
        o.request_id: o for o in simulate(trace, "vllm", PROFILE, PolicyOptions(num_replicas=2))
    }
    assert outcomes["c"].num_cached_tokens == 995 // BLOCK * BLOCK


def test_the_planner_admits_a_follow_up_whose_cached_prefix_makes_its_ttft_feasible():
    # The TTFT is half the full prompt's isolated prefill: infeasible without the cache.
    ttft_s = 0.5 * PROFILE.predictor().isolated_prefill_s(1300)
    for shared, lane in ((995, Lane.ADMITTED), (0, Lane.BEST_EFFORT)):
        trace = _parent_and_child(shared, ttft_s=ttft_s)
        outcomes = {o.request_id: o for o in simulate(trace, "agentflow", PROFILE)}
        assert outcomes["c"].lane is lane
        assert outcomes["c"].slo_met is (lane is Lane.ADMITTED)

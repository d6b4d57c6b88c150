"""The router on the simulator's fast path: bursts, affinity, the central lane, capacity."""

import random
from dataclasses import replace

import pytest

from agentflow.cluster.sim import (
    SimReplicaView,
    find_routed_capacity,
    make_routed_deployment,
    simulate_routed,
)
from agentflow.engine.sim import (
    FinishReason,
    Lane,
    PolicyOptions,
    RequestSpec,
    SimRequest,
    Simulation,
    get_profile,
    make_deployment,
)
from agentflow.errors import ConfigError
from agentflow.workloads import CapacitySettings

PROFILE = get_profile("opt-7b-a100")
OPTIONS = PolicyOptions(num_replicas=2, tightest_tpot_s=0.05, max_step_s=0.1)


def _request(request_id, arrival_s, prompt, output, *, program_id=None, after_id=None):
    return RequestSpec(
        request_id=request_id,
        arrival_s=arrival_s,
        num_prompt_tokens=prompt,
        num_output_tokens=output,
        ttft_s=3 * PROFILE.predictor().isolated_prefill_s(prompt),
        tpot_s=0.05,
        program_id=program_id or request_id,
        stage="s",
        after_id=after_id,
        delay_s=0.2 if after_id else 0.0,
    )


def _burst_then_steady(num_burst=40, num_steady=40, seed=0):
    rng = random.Random(seed)
    trace = [
        _request(f"b{i}", 0.0, rng.randint(200, 1500), rng.randint(20, 200))
        for i in range(num_burst)
    ]
    now_s = 1.0
    for i in range(num_steady):
        now_s += rng.expovariate(4.0)
        trace.append(_request(f"s{i}", now_s, rng.randint(200, 1500), rng.randint(20, 200)))
    return trace


def test_a_burst_keeps_admitted_requests_on_slo_and_drops_nothing():
    run = simulate_routed(_burst_then_steady(), "agentflow", PROFILE, OPTIONS, early_stop=False)

    assert len(run.outcomes) == 80
    assert all(o.finish_reason is FinishReason.LENGTH for o in run.outcomes)
    admitted = [o for o in run.outcomes if o.lane is Lane.ADMITTED]
    best_effort = [o for o in run.outcomes if o.lane is Lane.BEST_EFFORT]
    assert best_effort, "a burst of 40 long prompts overflows two replicas"
    assert len(admitted) > len(best_effort)
    assert all(o.slo_met for o in admitted), "admitted requests keep their SLOs"
    assert run.num_best_effort_routes > 0


@pytest.mark.parametrize("routing", ["round_robin", "least_loaded"])
def test_admission_driven_routing_serves_a_burst_at_least_as_well_as(routing):
    trace = _burst_then_steady(seed=1)
    ours = simulate_routed(trace, "agentflow", PROFILE, OPTIONS, early_stop=False)
    theirs = simulate_routed(trace, routing, PROFILE, OPTIONS, early_stop=False)

    def met(run):
        return sum(o.slo_met for o in run.outcomes)

    assert met(ours) >= met(theirs)


def test_a_programs_follow_up_stages_stay_on_its_replica():
    trace = []
    for p in range(10):
        parent = _request(f"p{p}:0", p * 0.5, 300, 20, program_id=f"p{p}")
        child = _request(f"p{p}:1", 0.0, 400, 20, program_id=f"p{p}", after_id=parent.request_id)
        trace += [parent, child]
    run = simulate_routed(trace, "agentflow", PROFILE, OPTIONS, early_stop=False)

    assert all(o.slo_met for o in run.outcomes)
    assert run.num_affinity == 10


def _two_round_programs(num_programs):
    trace = []
    for p in range(num_programs):
        parent = _request(f"p{p}:0", p * 0.5, 300, 20, program_id=f"p{p}")
        child = _request(f"p{p}:1", 0.0, 400, 20, program_id=f"p{p}", after_id=parent.request_id)
        trace += [parent, child]
    return trace


def test_a_program_stops_counting_on_its_replica_when_its_last_request_ends():
    deployment = make_routed_deployment("agentflow", PROFILE, OPTIONS)
    simulation = Simulation(_two_round_programs(10), deployment)
    outcomes = simulation.run()

    assert all(o.finish_reason is FinishReason.LENGTH for o in outcomes)
    assert all(v.activity.counts_idle_programs for v in deployment.views)  # they came back
    # Ended programs are not between rounds: no replica counts one, even right at the end.
    last_end_s = max(o.finish_s for o in outcomes)
    assert [v.num_active_programs(last_end_s) for v in deployment.views] == [0, 0]


def test_a_cancelled_request_ends_its_programs_count_and_is_reported_aborted():
    deployment = make_routed_deployment("agentflow", PROFILE, OPTIONS)
    request = SimRequest(_request("gone:0", 0.0, 300, 20, program_id="gone"), 0.0)
    assert deployment.add(request, 0.0)
    assert sum(v.num_active_programs(0.0) for v in deployment.views) == 1

    deployment.abort(request)

    assert request.finish_reason is FinishReason.ABORTED
    assert sum(v.num_active_programs(0.0) for v in deployment.views) == 0
    assert not deployment.has_work


def test_held_requests_are_promoted_when_seats_free_and_the_lane_drains():
    # Four seats per replica and a burst of 24 short requests with a loose 3 s TTFT: the
    # overflow waits centrally and is admitted as seats free up.
    profile = PROFILE.with_limits(max_num_seqs=4)
    trace = [replace(_request(f"b{i}", 0.0, 200, 10), ttft_s=3.0) for i in range(24)]
    deployment = make_routed_deployment("agentflow", profile, OPTIONS)
    outcomes = Simulation(trace, deployment).run()

    assert not deployment.held
    assert all(o.finish_reason is FinishReason.LENGTH for o in outcomes)
    assert deployment.num_promoted > 0, "held requests were admitted when seats freed"
    assert all(o.slo_met for o in outcomes if o.lane is Lane.ADMITTED)


def test_capacity_grows_with_the_number_of_replicas():
    settings = CapacitySettings(num_programs=40, resolution=0.3, arrival="poisson", start_rps=2)
    one = find_routed_capacity("coding", "agentflow", PROFILE, settings)
    two = find_routed_capacity(
        "coding", "agentflow", PROFILE, CapacitySettings(**{**_fields(settings), "num_replicas": 2})
    )
    assert two.capacity_rps > one.capacity_rps > 0


def test_routed_replicas_must_run_the_agentflow_scheduler():
    (instance,) = make_deployment("vllm", PROFILE).entry
    with pytest.raises(ConfigError, match="agentflow"):
        SimReplicaView(0, instance)


def _fields(settings):
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def test_the_router_prices_a_follow_up_with_the_prefix_its_parents_replica_holds():
    # The follow-up's TTFT is half its full prompt's isolated prefill: only the parent's
    # cached prompt makes it feasible, and only on the parent's replica. The router must see
    # that when it routes (else it routes the request as best-effort).
    parent = _request("p", 0.0, 1500, 20, program_id="prog")
    ttft_s = 0.5 * PROFILE.predictor().isolated_prefill_s(1600)
    child = replace(
        _request("c", 0.0, 1600, 20, program_id="prog", after_id="p"),
        ttft_s=ttft_s,
        num_shared_prefix_tokens=1495,
    )
    run = simulate_routed([parent, child], "agentflow", PROFILE, OPTIONS, early_stop=False)
    by_id = {o.request_id: o for o in run.outcomes}
    assert by_id["c"].num_cached_tokens == 1495 // PROFILE.block_size * PROFILE.block_size
    assert run.num_best_effort_routes == 0
    assert by_id["c"].lane is Lane.ADMITTED
    assert by_id["c"].slo_met

"""Routing policies on router mirrors (pure: no Ray, no engine)."""

import pytest

from agentflow.cluster import Route, Router, make_routing_policy
from agentflow.engine.sim import Lane
from agentflow.errors import ConfigError
from tests.cluster.factories import (
    NOW_S,
    PREDICTOR,
    loose_decoder,
    make_flight,
    make_mirrors,
    tight_long_prefill,
)


def _busy_but_short_queue_and_idle_but_long_queue():
    """Replica 0 holds 1 request that saturates it; replica 1 holds 4 light decoders."""
    mirrors = make_mirrors(2)
    mirrors[0].add(tight_long_prefill("big"), is_admitted=True)
    for i in range(4):
        mirrors[1].add(loose_decoder(f"light{i}"), is_admitted=True)
    return mirrors


def test_agentflow_routing_sends_a_request_where_the_planner_admits_it_not_to_the_short_queue():
    mirrors = _busy_but_short_queue_and_idle_but_long_queue()
    candidate = make_flight("new")
    assert not mirrors[0].can_admit(candidate.plan_request(), NOW_S)
    assert mirrors[1].can_admit(candidate.plan_request(), NOW_S)

    agentflow = make_routing_policy("agentflow").choose(candidate.plan_request(), mirrors, NOW_S)
    least = make_routing_policy("least_loaded").choose(candidate.plan_request(), mirrors, NOW_S)

    assert (agentflow.replica_id, agentflow.lane) == (1, Lane.ADMITTED)
    assert (least.replica_id, least.lane) == (0, None)  # JSQ is fooled by the queue length


def test_agentflow_routing_uses_the_best_effort_lane_when_no_replica_can_admit():
    mirrors = make_mirrors(2)
    for mirror in mirrors:
        mirror.add(tight_long_prefill(f"big{mirror.replica_id}"), is_admitted=True)
    waiting_be = make_flight("queued-be")
    mirrors[0].add(waiting_be, is_admitted=False)

    route = make_routing_policy("agentflow").choose(
        make_flight("new").plan_request(), mirrors, NOW_S
    )

    assert route.lane is Lane.BEST_EFFORT
    assert route.replica_id == 1  # the replica with the shorter best-effort backlog


def test_affinity_keeps_a_programs_stages_on_its_replica_even_if_busier():
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("agentflow"), mirrors)
    mirrors[1].add(loose_decoder("other"), is_admitted=True)
    first = make_flight("p:plan:0", program_id="p")
    router.commit(first, _route(1))
    router.release("p:plan:0", NOW_S)

    second = make_flight("p:act:0", program_id="p")
    route = router.propose(second, NOW_S)

    assert route.replica_id == 1 and route.is_affinity and route.lane is Lane.ADMITTED
    assert mirrors[1].num_in_flight > mirrors[0].num_in_flight


def test_a_new_program_avoids_a_replica_whose_programs_are_between_rounds():
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("agentflow"), mirrors)
    # Replica 0 serves three tool loops, each between rounds now (its tool is running);
    # replica 1 serves one program with a request in flight.
    for program in ("t0", "t1", "t2"):
        for round_ in range(2):
            flight = make_flight(f"{program}:{round_}", program_id=program)
            router.commit(flight, _route(0))
            router.release(f"{program}:{round_}", NOW_S)
    busy = make_flight("b:0", program_id="b")
    router.commit(busy, _route(1))
    assert {m.replica_id for m in mirrors if m.num_active_programs(NOW_S) == 3} == {0}

    new = make_flight("n:0", program_id="n")
    route = router.propose(new, NOW_S)

    assert mirrors[0].num_in_flight == 0 < mirrors[1].num_in_flight
    assert (route.replica_id, route.lane) == (1, Lane.ADMITTED)  # its tools will be back


def test_a_finished_program_frees_its_replica_for_new_ones_at_once():
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("agentflow"), mirrors)
    for program in ("t0", "t1", "t2"):  # tool loops on replica 0, now between rounds
        for round_ in range(2):
            router.commit(make_flight(f"{program}:{round_}", program_id=program), _route(0))
            router.release(f"{program}:{round_}", NOW_S)
    router.commit(make_flight("b:0", program_id="b"), _route(1))

    for program in ("t0", "t1", "t2"):
        router.end_program(program)  # the runtime: these are done, not between rounds

    assert mirrors[0].num_active_programs(NOW_S) == 0
    assert router.preferred_replica("t0") is None
    assert router.propose(make_flight("n:0", program_id="n"), NOW_S).replica_id == 0


def test_a_later_stage_waits_best_effort_on_its_programs_replica_rather_than_moving():
    # Replica 0 could admit it, but would prefill the program's whole context again.
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("agentflow"), mirrors)
    router.commit(make_flight("p:plan:0", program_id="p"), _route(1))
    router.release("p:plan:0", NOW_S)
    mirrors[1].add(tight_long_prefill("big"), is_admitted=True)
    follow_up = make_flight("p:act:0", program_id="p")
    assert mirrors[0].can_admit(follow_up.plan_request(), NOW_S)

    route = router.propose(follow_up, NOW_S)

    assert (route.replica_id, route.lane, route.is_affinity) == (1, Lane.BEST_EFFORT, True)


@pytest.mark.parametrize("policy", ["round_robin", "least_loaded"])
def test_baseline_routers_keep_a_programs_stages_together_too(policy):
    mirrors = make_mirrors(3)
    router = Router(make_routing_policy(policy), mirrors)
    mirrors[2].add(loose_decoder("busy"), is_admitted=True)
    router.commit(make_flight("p:plan:0", program_id="p"), _route(2))
    router.release("p:plan:0", NOW_S)

    routes = [router.propose(make_flight(f"p:act:{i}", program_id="p"), NOW_S) for i in range(3)]

    assert [(r.replica_id, r.is_affinity, r.lane) for r in routes] == [(2, True, None)] * 3


def test_affinity_is_forgotten_for_a_dead_replica():
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("agentflow"), mirrors)
    router.commit(make_flight("p:plan:0", program_id="p"), _route(1))
    router.mark_dead(1)

    assert router.preferred_replica("p") is None
    assert router.propose(make_flight("p:act:0", program_id="p"), NOW_S).replica_id == 0


def test_round_robin_cycles_and_least_loaded_joins_the_shortest_queue():
    mirrors = make_mirrors(3)
    mirrors[0].add(loose_decoder("a"), is_admitted=True)
    mirrors[0].add(loose_decoder("b"), is_admitted=True)
    mirrors[2].add(loose_decoder("c"), is_admitted=True)
    candidate = make_flight("new").plan_request()

    rr = make_routing_policy("round_robin")
    assert [rr.choose(candidate, mirrors, NOW_S).replica_id for _ in range(4)] == [0, 1, 2, 0]
    least = make_routing_policy("least_loaded")
    assert {least.choose(candidate, mirrors, NOW_S).replica_id for _ in range(3)} == {1}


def test_router_never_routes_to_a_dead_replica_and_reports_when_none_is_left():
    mirrors = make_mirrors(2)
    router = Router(make_routing_policy("round_robin"), mirrors)
    router.mark_dead(0)
    assert {router.propose(make_flight(f"r{i}"), NOW_S).replica_id for i in range(4)} == {1}
    router.mark_dead(1)
    assert router.propose(make_flight("last"), NOW_S) is None
    assert router.stats().dead_replica_ids == (0, 1)


def test_mirror_follows_progress_and_the_engines_word_on_the_lane():
    (mirror,) = make_mirrors(1)
    flight = make_flight("r")
    mirror.add(flight, is_admitted=True)
    mirror.record_output("r", 1, NOW_S + 0.1, "best_effort")

    assert flight.first_token_s == NOW_S + 0.1 and flight.num_output_tokens == 1
    assert not flight.is_admitted
    assert flight.plan_request().num_computed_tokens == flight.num_prompt_tokens
    mirror.remove("r", NOW_S)
    assert mirror.num_in_flight == 0


def test_a_request_past_its_ttft_is_never_admitted():
    (mirror,) = make_mirrors(1)
    late = make_flight("late", arrival_s=NOW_S - 10)
    assert not mirror.can_admit(late.plan_request(), NOW_S)


def test_the_router_judges_a_request_by_the_deadline_its_engine_gets_after_transit():
    (mirror,) = make_mirrors(1)
    prefill_s = PREDICTOR.isolated_prefill_s(256)
    candidate = make_flight("new", ttft_s=2 * prefill_s).plan_request()
    assert mirror.can_admit(candidate, NOW_S)
    # Delivery to and from the replica takes 1.5 prefills: the engine would get half of one.
    mirror.transit_s = 1.5 * prefill_s
    assert not mirror.can_admit(candidate, NOW_S)
    mirror.transit_s = 2.5 * prefill_s  # its first token could not even come back in time
    assert not mirror.can_admit(candidate, NOW_S)


def test_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="round_robin"):
        make_routing_policy("random")


def _route(replica_id):
    return Route(replica_id, Lane.ADMITTED)

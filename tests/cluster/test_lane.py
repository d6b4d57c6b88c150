"""The central best-effort lane: promotion, best-effort dispatch, nothing waits forever."""

import anyio
import pytest

from agentflow.cluster import BestEffortLane, ReplicaMirror, Route, Router, make_routing_policy
from agentflow.engine.sim import Lane
from tests.cluster.factories import NOW_S, make_flight
from tests.cluster.fakes import seated_view

pytestmark = pytest.mark.anyio


def _one_seat_pool(num_replicas=2, max_waiting_best_effort=1, *, fill_backlog=True):
    """Every replica's one seat is taken; with `fill_backlog`, each also holds one unstarted
    best-effort request that can no longer be admitted (so new best-effort requests wait)."""
    mirrors = [ReplicaMirror(i, seated_view(1)) for i in range(num_replicas)]
    router = Router(
        make_routing_policy("agentflow"), mirrors, max_waiting_best_effort=max_waiting_best_effort
    )
    for i in range(num_replicas):
        seated = make_flight(f"seated{i}")
        router.commit(seated, router.propose(seated, NOW_S))
        if fill_backlog:
            stale = make_flight(f"stale{i}", arrival_s=NOW_S - 10)
            router.commit(stale, Route(i, Lane.BEST_EFFORT))
    return router


async def _wait_in(lane, flight, routes):
    routes[flight.request_id] = await lane.wait(flight)


async def test_a_waiting_request_is_promoted_when_a_replica_can_admit_it():
    router = _one_seat_pool()
    lane = BestEffortLane(router, clock=lambda: NOW_S)
    flight = make_flight("late-comer")
    assert router.is_backed_up(router.propose(flight, NOW_S))
    routes = {}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(_wait_in, lane, flight, routes)
            await anyio.wait_all_tasks_blocked()
            lane.drain(NOW_S)
            assert len(lane) == 1  # still no room anywhere
            router.release("seated1", NOW_S)
            lane.drain(NOW_S + 0.01)
    route = routes["late-comer"]
    assert route.replica_id == 1 and route.lane is Lane.ADMITTED
    assert router.stats().num_promoted == 1
    assert router.mirrors[1].flight_by_id["late-comer"].is_admitted


async def test_a_request_that_can_no_longer_be_admitted_is_served_best_effort_when_room_frees():
    router = _one_seat_pool()
    lane = BestEffortLane(router, clock=lambda: NOW_S)
    flight = make_flight("overflow", ttft_s=0.01)
    routes = {}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(_wait_in, lane, flight, routes)
            await anyio.wait_all_tasks_blocked()
            lane.drain(NOW_S + 1.0)
            assert len(lane) == 1  # every replica already holds a waiting best-effort request
            router.record_output("stale0", 1, NOW_S + 1.0, "best_effort")  # it started on replica 0
            lane.drain(NOW_S + 1.0)
    assert routes["overflow"].replica_id == 0 and routes["overflow"].lane is Lane.BEST_EFFORT


async def test_waiters_are_told_when_no_replica_is_left():
    router = _one_seat_pool()
    lane = BestEffortLane(router, clock=lambda: NOW_S)
    routes = {}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(_wait_in, lane, make_flight("w"), routes)
            await anyio.wait_all_tasks_blocked()
            router.mark_dead(0)
            router.mark_dead(1)
            lane.drain(NOW_S)
    assert routes == {"w": None} and len(lane) == 0


async def test_the_lane_rechecks_on_its_own_and_a_cancelled_waiter_leaves_it():
    router = _one_seat_pool()
    now = [NOW_S]
    lane = BestEffortLane(router, clock=lambda: now[0], recheck_interval_s=0.005)
    routes = {}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(lane.run)
            with anyio.move_on_after(0.05):
                await lane.wait(make_flight("impatient"))
            assert len(lane) == 0
            group.start_soon(_wait_in, lane, make_flight("patient"), routes)
            await anyio.sleep(0.02)
            router.release("seated0", NOW_S)  # no notify: the periodic recheck must find it
            with anyio.fail_after(2):
                while "patient" not in routes:
                    await anyio.sleep(0.005)
            group.cancel_scope.cancel()
    assert routes["patient"].lane is Lane.ADMITTED

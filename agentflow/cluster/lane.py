"""The central best-effort lane: requests that no replica can admit and none has room for.

# NOTE(cluster): a request the router cannot admit anywhere is served best-effort, from some
# replica's leftover capacity. Queueing it on one replica would tie it to that replica: if
# another replica frees up first, the request could not use it. So only a few best-effort
# requests wait on each replica (`Router.max_waiting_best_effort`); the overflow of a burst
# waits here, in arrival order, and is re-offered to every replica whenever the cluster's
# state changes (a request ends or starts) and every `recheck_interval_s`: it is *promoted*
# (dispatched as admitted) as soon as some planner admits it, or dispatched best-effort to a
# replica whose best-effort backlog has drained. Nothing waits forever while a replica is
# alive, and nothing is dropped: with no live replica left, the waiter is told so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from agentflow.cluster.mirror import Flight
from agentflow.cluster.router import Router
from agentflow.cluster.routing import Route
from agentflow.engine.sim import Lane

__all__ = ["BestEffortLane"]


@dataclass(slots=True)
class _Waiter:
    flight: Flight
    route: Route | None = None
    is_done: bool = False
    event: anyio.Event = field(default_factory=anyio.Event)


class BestEffortLane:
    """Requests waiting centrally for admission or for best-effort room.

    Args:
        router: the pool's router (its decisions and mirrors).
        clock: the pool's clock (monotonic seconds).
        recheck_interval_s: how often waiting requests are re-offered without any event.
        max_admission_checks: waiting requests whose admission is re-checked per pass (each
            check runs one planner per replica); the rest wait for the next pass.
    """

    def __init__(
        self,
        router: Router,
        clock: Callable[[], float],
        *,
        recheck_interval_s: float = 0.02,
        max_admission_checks: int = 16,
    ) -> None:
        self.router = router
        self.clock = clock
        self.recheck_interval_s = recheck_interval_s
        self.max_admission_checks = max_admission_checks
        self._waiters: list[_Waiter] = []
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return len(self._waiters)

    def notify(self) -> None:
        """The cluster's state changed: re-offer the waiting requests soon."""
        self._wakeup.set()

    async def run(self) -> None:
        """Re-offer waiting requests on every notification and every recheck interval."""
        while True:
            with anyio.move_on_after(self.recheck_interval_s):
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            if self._waiters:
                self.drain(self.clock())

    async def wait(self, flight: Flight) -> Route | None:
        """Queue `flight` until it is dispatched.

        Returns:
            Its route, already committed; None if no replica is alive any more.
        """
        waiter = _Waiter(flight)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
            return waiter.route
        finally:
            if not waiter.is_done:  # cancelled while waiting
                self._waiters.remove(waiter)

    def drain(self, now_s: float) -> None:
        """One pass over the waiting requests, oldest first."""
        num_checks = 0
        for waiter in list(self._waiters):
            flight = waiter.flight
            is_admissible = flight.arrival_s + flight.ttft_s > now_s
            if is_admissible:
                if num_checks >= self.max_admission_checks:
                    continue
                num_checks += 1
            route = self.router.propose(flight, now_s)
            if route is None:
                self._finish(waiter, None)
            elif route.lane is not Lane.BEST_EFFORT:
                self.router.commit(flight, route, is_promotion=True)
                self._finish(waiter, route)
            elif not self.router.is_backed_up(route):
                self.router.commit(flight, route)
                self._finish(waiter, route)

    def _finish(self, waiter: _Waiter, route: Route | None) -> None:
        waiter.route = route
        waiter.is_done = True
        self._waiters.remove(waiter)
        waiter.event.set()

"""The central router (SLOs-Serve's controller): routing decisions and the state they read.

The router owns one `ReplicaMirror` per replica, the routing policy, and the program ->
replica affinity map. The pool reports every event to it (dispatch, output, end, replica
death); the router answers `propose` (where would this request go now?) and records `commit`
(it went there). It reads no clock: the pool passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from agentflow.cluster.mirror import Flight, ReplicaMirror
from agentflow.cluster.routing import Route, RoutingPolicy
from agentflow.engine.sim import Lane
from agentflow.errors import ConfigError

__all__ = ["Router", "RouterStats"]


@dataclass(frozen=True, slots=True)
class RouterStats:
    """Counters of the router's decisions since the pool started."""

    num_routed_by_replica: dict[int, int]
    """replica_id -> requests dispatched to it (re-submissions count again)."""
    num_admitted: int
    """Dispatched as admitted by the router's admission test."""
    num_best_effort: int
    """Dispatched to the best-effort lane."""
    num_affinity: int
    """Dispatched to the replica that served the program's previous stage."""
    num_promoted: int
    """Waited in the central best-effort lane, then admitted when a replica had room."""
    dead_replica_ids: tuple[int, ...]


class Router:
    """Routes requests over the live replicas.

    Args:
        policy: the routing policy.
        mirrors: one mirror per replica, indexed by replica id.
        max_waiting_best_effort: a replica takes a best-effort request only while it holds
            fewer unstarted best-effort requests than this (at least 1, or a request that can
            no longer be admitted would wait forever); beyond, requests wait centrally, where
            any replica can still admit them (promotion).
        max_programs: the affinity map remembers this many programs (least recent dropped).
    """

    def __init__(
        self,
        policy: RoutingPolicy,
        mirrors: Sequence[ReplicaMirror],
        *,
        max_waiting_best_effort: int = 2,
        max_programs: int = 100_000,
    ) -> None:
        self.policy = policy
        self.mirrors = list(mirrors)
        if max_waiting_best_effort < 1:
            raise ConfigError("router: max_waiting_best_effort must be >= 1")
        self.max_waiting_best_effort = max_waiting_best_effort
        self.max_programs = max_programs
        self._replica_by_program: OrderedDict[str, int] = OrderedDict()
        """program_id -> the replica that served its latest stage."""
        self._replica_by_request: dict[str, int] = {}
        """request_id -> the replica it is dispatched to now."""
        self._num_routed = [0] * len(self.mirrors)
        self._num_admitted = self._num_best_effort = self._num_affinity = 0
        self._num_promoted = 0

    # -- decisions ---------------------------------------------------------------------------

    @property
    def live_mirrors(self) -> list[ReplicaMirror]:
        """Mirrors of the replicas still alive."""
        return [m for m in self.mirrors if m.is_alive]

    def preferred_replica(self, program_id: str) -> int | None:
        """The live replica that served the program's previous stage, if any."""
        replica_id = self._replica_by_program.get(program_id)
        if replica_id is None or not self.mirrors[replica_id].is_alive:
            return None
        return replica_id

    def propose(self, flight: Flight, now_s: float) -> Route | None:
        """Where `flight` would go now (None: no replica is alive). Changes nothing."""
        live = self.live_mirrors
        if not live:
            return None
        preferred = self.preferred_replica(flight.program_id) if flight.program_id else None
        return self.policy.choose(flight.plan_request(), live, now_s, preferred_id=preferred)

    def is_backed_up(self, route: Route) -> bool:
        """Whether a best-effort `route` should wait centrally instead of queueing remotely."""
        if route.lane is not Lane.BEST_EFFORT:
            return False
        mirror = self.mirrors[route.replica_id]
        return mirror.num_waiting_best_effort >= self.max_waiting_best_effort

    def commit(self, flight: Flight, route: Route, *, is_promotion: bool = False) -> None:
        """Record that `flight` is dispatched along `route`."""
        self.mirrors[route.replica_id].add(flight, is_admitted=route.lane is not Lane.BEST_EFFORT)
        self._replica_by_request[flight.request_id] = route.replica_id
        self._num_routed[route.replica_id] += 1
        self._num_admitted += route.lane is Lane.ADMITTED
        self._num_best_effort += route.lane is Lane.BEST_EFFORT
        self._num_affinity += route.is_affinity
        self._num_promoted += is_promotion
        if flight.program_id:
            self._replica_by_program[flight.program_id] = route.replica_id
            self._replica_by_program.move_to_end(flight.program_id)
            while len(self._replica_by_program) > self.max_programs:
                self._replica_by_program.popitem(last=False)

    # -- events ------------------------------------------------------------------------------

    def record_output(
        self, request_id: str, num_tokens: int, now_s: float, lane: str | None
    ) -> None:
        """Tokens of `request_id` came back from its replica."""
        replica_id = self._replica_by_request.get(request_id)
        if replica_id is not None:
            self.mirrors[replica_id].record_output(request_id, num_tokens, now_s, lane)

    def release(self, request_id: str, now_s: float) -> None:
        """`request_id` left its replica at `now_s` (ended, failed, cancelled or moving)."""
        replica_id = self._replica_by_request.pop(request_id, None)
        if replica_id is not None:
            self.mirrors[replica_id].remove(request_id, now_s)

    def end_program(self, program_id: str) -> None:
        """`program_id` finished: forget its affinity, and no replica counts it any more."""
        self._replica_by_program.pop(program_id, None)
        for mirror in self.mirrors:
            mirror.activity.program_ended(program_id)

    def mark_dead(self, replica_id: int) -> None:
        """The replica died: route nothing more to it."""
        self.mirrors[replica_id].mark_dead()

    def stats(self) -> RouterStats:
        """Counters since the start."""
        return RouterStats(
            num_routed_by_replica=dict(enumerate(self._num_routed)),
            num_admitted=self._num_admitted,
            num_best_effort=self._num_best_effort,
            num_affinity=self._num_affinity,
            num_promoted=self._num_promoted,
            dead_replica_ids=tuple(m.replica_id for m in self.mirrors if not m.is_alive),
        )

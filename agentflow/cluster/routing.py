"""Routing policies: which replica serves a new request, and in which lane.

* `agentflow` (SLOs-Serve's controller, §5): ask each replica's planner whether it can admit
  the request beside its current load; send it to the least loaded one that can. If none can,
  the request goes to the best-effort lane, on the replica with the least best-effort backlog.
* `round_robin`: the next live replica in turn.
* `least_loaded`: join the shortest queue (fewest requests in flight).

Every policy keeps a program's later stages on the replica that served its previous stage
(sticky sessions): that replica holds the program's context in its prefix cache, and any
other replica would prefill the whole context again. The agentflow policy asks that
replica's planner for the lane (admitted, else best-effort there, where the request is
promoted when it becomes feasible). Measured on the simulator (tool calling, two replicas of
OPT-13B TP2 at 5.5 programs/s): moving a stage that its replica could not admit to one that
could lowered attainment from 0.97 to 0.75, and routers that ignored the program lost half
their capacity on bursty tool calling. A program moves only when its replica has died.

The baselines leave the lane to the engine (`Route.lane` is None). Policies are pure: they
read the replicas' state and the time they are given, and keep only a rotation counter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agentflow.engine.sim import Lane
from agentflow.errors import ConfigError
from agentflow.planner import PlanRequest

__all__ = [
    "ROUTING_POLICY_NAMES",
    "AgentflowRouting",
    "LeastLoadedRouting",
    "ReplicaView",
    "RoundRobinRouting",
    "Route",
    "RoutingPolicy",
    "make_routing_policy",
]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes."""

    replica_id: int
    lane: Lane | None
    """The router's admission decision; None when the policy leaves it to the engine."""
    is_affinity: bool = False
    """It goes to the replica that served the program's previous stage."""


class ReplicaView(Protocol):
    """What a routing policy may read about a replica.

    Implemented by `ReplicaMirror` in the pool and by the simulator adapter in capacity runs.
    """

    @property
    def replica_id(self) -> int:
        """Index in the pool."""
        ...

    @property
    def is_alive(self) -> bool:
        """False once the replica has died."""
        ...

    @property
    def num_in_flight(self) -> int:
        """Requests it holds now."""
        ...

    @property
    def num_waiting_best_effort(self) -> int:
        """Best-effort requests it holds that have not produced a token yet."""
        ...

    def num_active_programs(self, now_s: float) -> int:
        """Programs it serves now or between their rounds (`ProgramActivity`)."""
        ...

    def can_admit(self, candidate: PlanRequest, now_s: float) -> bool:
        """Whether its planner would admit `candidate` now, beside its current load."""
        ...


class RoutingPolicy(Protocol):
    """Chooses a replica for each new request.

    Contract: `choose` is called once per dispatch with the live replicas only (never empty),
    reads no clock and does no I/O; `preferred_id` is the replica that served the same
    program's previous stage, if it is alive. It returns a `Route` to one of `replicas`.
    """

    name: str

    def choose(
        self,
        candidate: PlanRequest,
        replicas: Sequence[ReplicaView],
        now_s: float,
        *,
        preferred_id: int | None = None,
    ) -> Route:
        """The route of `candidate`."""
        ...


class _Rotation:
    """A turn counter that breaks ties fairly between replicas."""

    def __init__(self) -> None:
        self._turn = 0

    def order(self, replicas: Sequence[ReplicaView]) -> list[ReplicaView]:
        """`replicas` starting at this turn's position; advances the turn."""
        start = self._turn % len(replicas)
        self._turn += 1
        return [*replicas[start:], *replicas[:start]]


class RoundRobinRouting:
    """The next live replica in turn; the engine decides the lane."""

    name = "round_robin"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(
        self,
        candidate: PlanRequest,
        replicas: Sequence[ReplicaView],
        now_s: float,
        *,
        preferred_id: int | None = None,
    ) -> Route:
        """The program's replica, else the replica whose turn it is."""
        del candidate, now_s
        home = _program_replica(replicas, preferred_id)
        if home is not None:
            return Route(home.replica_id, None, is_affinity=True)
        return Route(self._rotation.order(replicas)[0].replica_id, None)


class LeastLoadedRouting:
    """Join the shortest queue: fewest requests in flight (ties in turn)."""

    name = "least_loaded"

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def choose(
        self,
        candidate: PlanRequest,
        replicas: Sequence[ReplicaView],
        now_s: float,
        *,
        preferred_id: int | None = None,
    ) -> Route:
        """The program's replica, else the replica holding the fewest requests."""
        del candidate, now_s
        home = _program_replica(replicas, preferred_id)
        if home is not None:
            return Route(home.replica_id, None, is_affinity=True)
        ordered = self._rotation.order(replicas)
        return Route(min(ordered, key=_load).replica_id, None)


class AgentflowRouting:
    """Admission-driven routing with sticky programs and a best-effort lane.

    Args:
        use_affinity: keep a program's later stages on its replica (see the module docstring);
            off, every stage is routed as a new request (for comparison only).
    """

    name = "agentflow"

    def __init__(self, *, use_affinity: bool = True) -> None:
        self.use_affinity = use_affinity
        self._rotation = _Rotation()

    def choose(
        self,
        candidate: PlanRequest,
        replicas: Sequence[ReplicaView],
        now_s: float,
        *,
        preferred_id: int | None = None,
    ) -> Route:
        """The program's replica, else the least loaded one that admits, else best-effort.

        A new program goes to the replica serving the fewest programs (in flight or between
        rounds, then fewest requests) whose planner admits `candidate`; if none does, to the
        best-effort lane of the replica with the least best-effort backlog. A later stage of a
        program stays on its replica, admitted if that replica's planner admits it and
        best-effort there otherwise: re-prefilling its context elsewhere costs the pool more
        than waiting where it is cached.
        """
        if self.use_affinity and preferred_id is not None:
            home = _program_replica(replicas, preferred_id)
            if home is not None:
                lane = Lane.ADMITTED if home.can_admit(candidate, now_s) else Lane.BEST_EFFORT
                return Route(home.replica_id, lane, is_affinity=True)
        # Programs between rounds will be back: count them, not just requests in flight.
        ordered = sorted(
            self._rotation.order(replicas),
            key=lambda r: (r.num_active_programs(now_s), r.num_in_flight),
        )
        for replica in ordered:
            if replica.can_admit(candidate, now_s):
                return Route(replica.replica_id, Lane.ADMITTED)
        target = min(ordered, key=_backlog)
        return Route(target.replica_id, Lane.BEST_EFFORT)


def _program_replica(
    replicas: Sequence[ReplicaView], preferred_id: int | None
) -> ReplicaView | None:
    """The live replica that served the program's previous stage, if any."""
    return next((r for r in replicas if r.replica_id == preferred_id), None)


def _load(replica: ReplicaView) -> int:
    return replica.num_in_flight


def _backlog(replica: ReplicaView) -> tuple[int, int]:
    return replica.num_waiting_best_effort, replica.num_in_flight


_POLICIES: dict[str, Callable[[], RoutingPolicy]] = {
    "agentflow": AgentflowRouting,
    "round_robin": RoundRobinRouting,
    "least_loaded": LeastLoadedRouting,
}

ROUTING_POLICY_NAMES: tuple[str, ...] = tuple(_POLICIES)


def make_routing_policy(name: str) -> RoutingPolicy:
    """A fresh routing policy by name ("agentflow", "round_robin" or "least_loaded").

    Raises:
        ConfigError: unknown name.
    """
    try:
        return _POLICIES[name]()
    except KeyError:
        raise ConfigError(
            f"routing: unknown policy {name!r}; choose one of {list(ROUTING_POLICY_NAMES)}"
        ) from None

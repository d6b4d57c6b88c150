"""Routing policies: which replica serves a new request, and in which lane.

* `agentflow` (SLOs-Serve's controller, §5): ask each replica's planner whether it can admit
  the request beside its current load; send it to one that can (the program's previous
  replica first, for its prefix cache, then the least loaded). If none can, the request goes
  to the best-effort lane, on the replica with the least best-effort backlog.
* `round_robin`: the next live replica in turn.
* `least_loaded`: join the shortest queue (fewest requests in flight).

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
        """The replica whose turn it is."""
        del candidate, now_s, preferred_id
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
        """The replica holding the fewest requests."""
        del candidate, now_s, preferred_id
        ordered = self._rotation.order(replicas)
        return Route(min(ordered, key=_load).replica_id, None)


class AgentflowRouting:
    """Admission-driven routing with prefix-cache affinity and a best-effort lane.

    Args:
        use_affinity: try the program's previous replica first (its prefix is cached there).
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
        """The first replica that can admit `candidate`; else best-effort where least backed up.

        Order: the preferred replica (affinity), then the others by load. Affinity never costs
        the SLO: the preferred replica is chosen only if its planner admits the request.
        """
        ordered = sorted(self._rotation.order(replicas), key=_load)
        if self.use_affinity and preferred_id is not None:
            ordered.sort(key=lambda r: r.replica_id != preferred_id)  # stable: preferred first
        for replica in ordered:
            if replica.can_admit(candidate, now_s):
                is_affinity = self.use_affinity and replica.replica_id == preferred_id
                return Route(replica.replica_id, Lane.ADMITTED, is_affinity=is_affinity)
        target = min(ordered, key=_backlog)
        return Route(target.replica_id, Lane.BEST_EFFORT)


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

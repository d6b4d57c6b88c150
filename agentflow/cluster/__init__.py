"""Multi-replica serving: replicas as Ray actors, an SLO-aware router, a best-effort lane.

`Pool` is an `Engine`: `Runtime(pool)` runs programs over N replicas unchanged. Ray is imported
only when a pool starts (and only inside this package); the router, the policies and the
simulator adapter (`agentflow.cluster.sim`) are pure Python.
"""

from agentflow.cluster.lane import BestEffortLane
from agentflow.cluster.mirror import Flight, ReplicaMirror
from agentflow.cluster.pool import Pool, PoolConfig, PoolStats, start_pool
from agentflow.cluster.ray_setup import connect_ray, disconnect_ray
from agentflow.cluster.replica import ReplicaHandle, ReplicaInfo, ReplicaServer
from agentflow.cluster.router import Router, RouterStats
from agentflow.cluster.routing import (
    ROUTING_POLICY_NAMES,
    AgentflowRouting,
    LeastLoadedRouting,
    ReplicaView,
    RoundRobinRouting,
    Route,
    RoutingPolicy,
    make_routing_policy,
)
from agentflow.cluster.spec import (
    EngineSpec,
    FactorySpec,
    PlannerView,
    PromptCounter,
    SimSpec,
    VLLMSpec,
)

__all__ = [
    "ROUTING_POLICY_NAMES",
    "AgentflowRouting",
    "BestEffortLane",
    "EngineSpec",
    "FactorySpec",
    "Flight",
    "LeastLoadedRouting",
    "PlannerView",
    "Pool",
    "PoolConfig",
    "PoolStats",
    "PromptCounter",
    "ReplicaHandle",
    "ReplicaInfo",
    "ReplicaMirror",
    "ReplicaServer",
    "ReplicaView",
    "RoundRobinRouting",
    "Route",
    "Router",
    "RouterStats",
    "RoutingPolicy",
    "SimSpec",
    "VLLMSpec",
    "connect_ray",
    "disconnect_ray",
    "make_routing_policy",
    "start_pool",
]

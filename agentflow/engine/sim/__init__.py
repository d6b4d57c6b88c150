"""Discrete-event simulator of a vLLM-like engine: policies, profiles, and two faces.

* `simulate(trace, policy, profile)`: a fast event loop for capacity search.
* `SimEngine`: the `Engine` protocol on a simulated clock, so programs and the runtime run on
  it unchanged.

Pure Python and numpy: never imports vllm, torch or ray.
"""

from agentflow.engine.sim.clock import PacedClock, SimClock, VirtualClock
from agentflow.engine.sim.deployment import Deployment, Progress
from agentflow.engine.sim.engine import SimEngine, SimEngineConfig
from agentflow.engine.sim.instance import Batch, EngineLimits, Instance, SchedulingPolicy, Step
from agentflow.engine.sim.loop import Simulation, StopRule, simulate
from agentflow.engine.sim.policies import (
    POLICY_NAMES,
    AgentflowPolicy,
    FCFSChunkedPolicy,
    PolicyOptions,
    make_deployment,
    sarathi_token_budget,
)
from agentflow.engine.sim.profiles import SimProfile, cpu_profile, get_profile, list_profiles
from agentflow.engine.sim.request import (
    FinishReason,
    Lane,
    RequestOutcome,
    RequestSpec,
    SimRequest,
)

__all__ = [
    "POLICY_NAMES",
    "AgentflowPolicy",
    "Batch",
    "Deployment",
    "EngineLimits",
    "FCFSChunkedPolicy",
    "FinishReason",
    "Instance",
    "Lane",
    "PacedClock",
    "PolicyOptions",
    "Progress",
    "RequestOutcome",
    "RequestSpec",
    "SchedulingPolicy",
    "SimClock",
    "SimEngine",
    "SimEngineConfig",
    "SimProfile",
    "SimRequest",
    "Simulation",
    "Step",
    "StopRule",
    "VirtualClock",
    "cpu_profile",
    "get_profile",
    "list_profiles",
    "make_deployment",
    "sarathi_token_budget",
    "simulate",
]

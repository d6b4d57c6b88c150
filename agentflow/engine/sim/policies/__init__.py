"""Scheduling policies of the simulator, and the factory that builds a policy's deployment."""

from agentflow.engine.sim.policies.agentflow import AgentflowPolicy, to_plan_request
from agentflow.engine.sim.policies.factory import POLICY_NAMES, PolicyOptions, make_deployment
from agentflow.engine.sim.policies.fcfs import FCFSChunkedPolicy, sarathi_token_budget

__all__ = [
    "POLICY_NAMES",
    "AgentflowPolicy",
    "FCFSChunkedPolicy",
    "PolicyOptions",
    "make_deployment",
    "sarathi_token_budget",
    "to_plan_request",
]

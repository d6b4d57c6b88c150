"""Runtime: executes program instances and records per-stage latencies."""

from agentflow.runtime.context import Context
from agentflow.runtime.records import ProgramResult, ProgramStatus, StageRecord
from agentflow.runtime.runtime import Runtime

__all__ = ["Context", "ProgramResult", "ProgramStatus", "Runtime", "StageRecord"]

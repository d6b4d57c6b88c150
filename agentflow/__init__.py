"""agentflow: multi-stage LLM programs with per-stage latency SLOs, served on vLLM."""

from agentflow.engine.interface import Engine, GenerationRequest, TokenDelta
from agentflow.errors import (
    AgentflowError,
    ConfigError,
    EngineError,
    IterationLimit,
    ModelError,
    ProgramError,
    RequestFailed,
)
from agentflow.program import SLO, Agent, Stage, StageSpec, agent, stage
from agentflow.runtime import Context, ProgramResult, ProgramStatus, Runtime, StageRecord

__version__ = "0.1.0"

__all__ = [
    "SLO",
    "Agent",
    "AgentflowError",
    "ConfigError",
    "Context",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "IterationLimit",
    "ModelError",
    "ProgramError",
    "ProgramResult",
    "ProgramStatus",
    "RequestFailed",
    "Runtime",
    "Stage",
    "StageRecord",
    "StageSpec",
    "TokenDelta",
    "__version__",
    "agent",
    "stage",
]

"""Program API: `@stage`, `@agent`, SLO specs and the stage graph."""

from agentflow.program.agent import Agent, agent
from agentflow.program.slo import SLO
from agentflow.program.stage import Stage, StageSpec, stage

__all__ = ["SLO", "Agent", "Stage", "StageSpec", "agent", "stage"]

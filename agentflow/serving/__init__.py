"""`agentflow serve`: an OpenAI-compatible HTTP server over the SLO-planned engine."""

from agentflow.serving.app import create_app
from agentflow.serving.completions import CompletionService, ServeDefaults

__all__ = ["CompletionService", "ServeDefaults", "create_app"]

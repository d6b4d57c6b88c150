"""Engines: the protocol and its backends (vLLM in `engine.vllm`, imported on demand)."""

from agentflow.engine.interface import Engine, GenerationRequest, TokenDelta

__all__ = ["Engine", "GenerationRequest", "TokenDelta"]

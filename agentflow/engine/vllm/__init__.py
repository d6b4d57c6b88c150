"""vLLM backend: the engine wrapper (frontend process) and the scheduler (engine-core process)."""

from agentflow.engine.vllm.config import SchedulingPolicy, VLLMEngineConfig
from agentflow.engine.vllm.engine import VLLMEngine

__all__ = ["SchedulingPolicy", "VLLMEngine", "VLLMEngineConfig"]

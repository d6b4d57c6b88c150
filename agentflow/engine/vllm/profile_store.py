"""Fitted step-time profiles, cached per (model, hardware, dtype) under the user cache."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from agentflow.engine.vllm.cpus import usable_cpus
from agentflow.engine.vllm.dtype import EngineDtype, resolve_dtype
from agentflow.models import cache_dir
from agentflow.planner import StepTimePredictor

__all__ = ["hardware_id", "load_profile", "profile_path", "profiles_dir"]


def hardware_id() -> str:
    """A short name for this machine's accelerator (or CPU) for profile file names."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0).replace(" ", "-").lower()
    except ImportError:
        pass
    return f"cpu-{platform.machine()}-{len(usable_cpus())}c"


def profiles_dir() -> Path:
    """Where fitted profiles live (`$AGENTFLOW_PROFILES`, else the cache's `profiles/`)."""
    if env := os.environ.get("AGENTFLOW_PROFILES"):
        return Path(env)
    return cache_dir() / "profiles"


def profile_path(model: Path, dtype: EngineDtype = "auto") -> Path:
    """Where the fitted profile of `model` at `dtype` on this hardware is cached.

    The dtype is part of the key: on a CPU without native bfloat16 the two formats differ by
    3.4x in prefill speed and in how decode cost grows with the batch (benchmarks/cpu_dtype.py).
    """
    return profiles_dir() / f"{model.name}__{hardware_id()}__{resolve_dtype(dtype)}.json"


def load_profile(model: Path, dtype: EngineDtype = "auto") -> StepTimePredictor | None:
    """The cached profile for `model` at `dtype` on this hardware, if one was fitted."""
    path = profile_path(model, dtype)
    return StepTimePredictor.load(path) if path.exists() else None

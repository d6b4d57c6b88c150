"""Planner settings: engine limits, planner choice, look-ahead and speculation, validated once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentflow.errors import ConfigError
from agentflow.metrics.attainment import TOLERANCE

__all__ = ["PlannerConfig", "SpecConfig"]

Probability = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


def _config_error(model: str, exc: ValidationError) -> ConfigError:
    """Turn pydantic's error list into one ConfigError that names every bad field."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(loc) for loc in err["loc"]) or "(model)"
        parts.append(f"{field}: {err['msg']}")
    return ConfigError(f"invalid {model}: " + "; ".join(parts))


class _Settings(BaseModel):
    """Frozen pydantic model whose validation errors surface as `ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(type(self).__name__, exc) from exc


class SpecConfig(_Settings):
    """Speculative decoding model: geometric acceptance, one rate per TPOT tier.

    A verify of length `s` (s - 1 draft tokens plus the bonus token) yields
    `E[s] = (1 - alpha**s) / (1 - alpha)` tokens in expectation.
    """

    max_spec_len: int = Field(ge=1, le=64)
    """Longest verify length per request and step (1 = plain decoding)."""
    alpha: Probability = 0.7
    """Default per-token acceptance probability."""
    alpha_by_tier: dict[int, Probability] = Field(default_factory=dict)
    """Acceptance probability per tier index (0 = tightest TPOT tier); falls back to `alpha`."""

    def alpha_for(self, tier: int) -> float:
        """Acceptance probability for tier index `tier`."""
        return self.alpha_by_tier.get(tier, self.alpha)


class PlannerConfig(_Settings):
    """What the planner needs to know about the engine, and how to plan.

    Raises:
        ConfigError: on any invalid field; the message names the field.
    """

    kv_blocks_total: int = Field(gt=0)
    """KV cache size in blocks (best-effort holders count as free: they can be preempted)."""
    block_size: int = Field(default=16, gt=0)
    """Tokens per KV block."""
    max_num_batched_tokens: int = Field(gt=0)
    """Engine cap on tokens per step (decode + prefill)."""
    max_num_seqs: int = Field(gt=0)
    """Engine cap on sequences per step; also a cap on concurrently admitted requests."""
    planner: Literal["fast", "exact"] = "fast"
    """Admission algorithm: greedy EDF with feasibility simulation, or the SLOs-Serve DP."""
    horizon_s: PositiveSeconds = 1.0
    """Look-ahead step length: the longest step the planner plans, and the step length the
    sustainability model assumes while no decoder is active. Decode sustainability itself is
    checked at every instant ahead (load only falls after the last decode start), which covers
    this window."""
    speculation: SpecConfig | None = None
    """Speculative decoding model, or None when the engine does not speculate."""
    tpot_tolerance: float = Field(default=TOLERANCE, ge=0.0, le=1.0, allow_inf_nan=False)
    """Decode is paced to TPOT·(1 + this). The SLO judges token n at t0 + (n−1)·TPOT·1.05
    (metrics.attainment), so the default plans to the rule as scored; the 20-token checkpoints
    absorb a step that runs over. Planning to the bare TPOT turned away decoders the engine
    could serve: in the simulator stock vLLM out-served agentflow on tool calling and
    reasoning (benchmarks/capacity_sim.py). TTFT keeps no such allowance: one late step misses
    it. 0 plans to the bare TPOT, keeping the 5 % as a margin for step-time noise: the vLLM
    engine does that by default (`VLLMEngineConfig.tpot_tolerance`)."""
    tier_margin_s: float = Field(default=0.001, ge=0.0, allow_inf_nan=False)
    """Safety margin subtracted from each distinct TPOT to form a tier (SLOs-Serve: 1 ms)."""
    loosest_tier_extra_s: PositiveSeconds = 0.1
    """The extra loosest tier sits this far above the loosest TPOT (SLOs-Serve: 0.1 s)."""
    max_plan_reuses: int = Field(default=8, ge=0)
    """Steps in a row that may reuse a steady plan (every running request an admitted decoder,
    nothing waiting) instead of planning again (`agentflow.planner.steady`); 0 plans every
    step. Bounds how many steps pass before an admitted set the engine can no longer serve
    in time is found and cut back."""
    max_dp_transitions: int | None = Field(default=50_000, gt=0)
    """Work cap of the exact planner (about 5 s on 2 cores); past it, the plan falls back to the
    fast planner's admission. None: no cap."""

    @model_validator(mode="after")
    def _batch_fits_a_block(self) -> PlannerConfig:
        if self.max_num_seqs > self.max_num_batched_tokens:
            raise ValueError("max_num_seqs must not exceed max_num_batched_tokens")
        return self

"""Settings of one vLLM engine replica, validated at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentflow.engine.vllm.dtype import EngineDtype

__all__ = ["ENGINE_TPOT_TOLERANCE", "LANE_KEY", "SchedulingPolicy", "VLLMEngineConfig"]

LANE_KEY = "agentflow_lane"
"""Output key through which our scheduler tells the client a request's lane: vLLM outputs have
no field for it, so it rides in `RequestOutput.kv_transfer_params` (unused without a connector).
"""

SchedulingPolicy = Literal["agentflow", "fcfs", "edf"]
"""agentflow = our scheduler class; fcfs = stock vLLM; edf = stock vLLM priority = deadline."""


ENGINE_TPOT_TOLERANCE = 0.0
"""The real engine's default `tpot_tolerance` (see `VLLMEngineConfig.tpot_tolerance`)."""

PlannerName = Literal["fast", "exact", "none"]
"""Our scheduler's planner; 'none' serves in deadline order without admission control."""


class VLLMEngineConfig(BaseModel):
    """How to start one vLLM engine. Defaults suit the 2-core CPU machines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path
    """A local model directory (config.json, tokenizer, weights unless `load_format='dummy'`)."""
    policy: SchedulingPolicy = "agentflow"
    kv_cache_mib: int = Field(default=512, gt=0)
    """Explicit KV-cache size: without one the CPU worker asks for 90 % of RAM and fails."""
    max_model_len: int = Field(default=4096, gt=0)
    max_num_seqs: int = Field(default=64, gt=0)
    max_num_batched_tokens: int = Field(default=512, gt=0)
    """Per-step token budget (chunked prefill chunk size for stock vLLM)."""
    load_format: str = "auto"
    """'dummy' initialises random weights (tests with a tiny config-only model)."""
    dtype: EngineDtype = "auto"
    """'auto': bfloat16 on a CPU that computes it natively, else float32 (3.4x faster prefill
    on a CPU without it, benchmarks/cpu_dtype.py); on a GPU, the checkpoint's dtype
    (`agentflow.engine.vllm.dtype`)."""
    enforce_eager: bool = True
    seed: int = 0
    planner: PlannerName = "fast"
    """Our scheduler's planner ('none': deadline order only). Ignored by the stock policies."""
    tpot_tolerance: float = Field(
        default=ENGINE_TPOT_TOLERANCE, ge=0.0, le=1.0, allow_inf_nan=False
    )
    """How far past the bare TPOT the planner paces decode (`PlannerConfig.tpot_tolerance`).
    0 here, unlike the simulator's 0.05 (the tolerance the SLO is scored with): on this shared
    2-core VM step times drift by 10 % between runs, and the 5 % is the margin that keeps
    admitted requests on time. benchmarks/capacity.py --backend vllm, two runs in a row: with
    0.05, capacity 2.38 req/s and 98.5 % of admitted requests on time (target 99 %); with 0,
    2.28 req/s (one 5 % bisection step lower, within run-to-run noise) and 100 %."""
    trace_path: Path | None = None
    """Where our scheduler writes its JSON-lines trace of requests and steps (None: off). With
    a stock policy, steps only: the engine then runs vLLM's scheduler in a subclass that times
    them and decides nothing."""
    num_speculative_tokens: int = Field(default=0, ge=0, le=15)
    """Drafts per decode from vLLM's n-gram proposer (prompt lookup); 0 turns speculation off.
    Under `policy='agentflow'` this is the most a request verifies: the planner picks each SLO
    tier's length every step from the acceptance it measures (SLOs-Serve §4). The stock
    policies verify every draft, as vLLM does."""
    ngram_lookup: tuple[int, int] = (2, 4)
    """Shortest and longest n-gram the proposer matches against the prompt and output so far."""
    spec_acceptance_prior: float = Field(default=0.5, gt=0.0, lt=1.0)
    """The planner's per-draft acceptance probability until it has measured its own."""
    warmup: bool = True
    """Serve a few throw-away requests at start: the first prefill of each new shape pays
    one-off allocations (seconds on CPU) that would otherwise land on a user's first TTFT."""
    measure_speed: bool = False
    """Without a cached `agentflow profile` fit for this model, time one lone request after the
    warm-up and scale the frontend's step-time model to it. Relative budgets ("5x" TTFT, "3x"
    TPOT) are resolved in the frontend, which otherwise keeps the packaged profile of another
    machine (the engine core follows the real speed on its own, from every step). On by
    default in the command line; off here, so that tests and benchmarks decide budgets from
    the model they pass."""
    omp_threads_bind: str | None = None
    """VLLM_CPU_OMP_THREADS_BIND. None: on small machines (≤ 4 cores) pin the model worker to
    the last core and leave the rest to the frontend and the engine core; else vLLM's 'auto'.
    Measured on 2 cores: unpinned ('nobind'), steps stall for up to 3 s when the frontend is
    busy and the step-time fit has R² 0.03; pinned, R² 0.99 (benchmarks/predictor_accuracy.py).
    """

    @model_validator(mode="after")
    def _lookup_is_a_range(self) -> VLLMEngineConfig:
        shortest, longest = self.ngram_lookup
        if not 1 <= shortest <= longest:
            raise ValueError(
                f"ngram_lookup must be (min, max) with 1 <= min <= max, got {self.ngram_lookup}"
            )
        return self

    @property
    def speculative_config(self) -> dict[str, Any] | None:
        """The `speculative_config` vLLM gets from these settings (None: speculation off)."""
        if self.num_speculative_tokens == 0:
            return None
        return {
            "method": "ngram",
            "num_speculative_tokens": self.num_speculative_tokens,
            "prompt_lookup_min": self.ngram_lookup[0],
            "prompt_lookup_max": self.ngram_lookup[1],
        }

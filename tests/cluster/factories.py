"""Builders for the router tests: flights, mirrors with the CPU engine's planner model."""

from __future__ import annotations

from typing import Any

from agentflow.cluster import Flight, PlannerView, ReplicaMirror
from agentflow.planner import PlannerConfig, StepTimePredictor

PREDICTOR = StepTimePredictor.default_cpu()
NOW_S = 100.0


def cpu_view(**overrides: Any) -> PlannerView:
    fields: dict[str, Any] = {
        "kv_blocks_total": 4096,
        "max_num_batched_tokens": 512,
        "max_num_seqs": 64,
    }
    fields.update(overrides)
    return PlannerView(PREDICTOR.to_json(), PlannerConfig(**fields))


def make_mirrors(num_replicas: int = 2, **overrides: Any) -> list[ReplicaMirror]:
    return [ReplicaMirror(i, cpu_view(**overrides)) for i in range(num_replicas)]


def make_flight(request_id: str = "r", **overrides: Any) -> Flight:
    """A new 256-token request with a 5x TTFT and a 50 ms TPOT, arriving now."""
    fields: dict[str, Any] = {
        "program_id": request_id,
        "arrival_s": NOW_S,
        "ttft_s": 5 * PREDICTOR.isolated_prefill_s(256),
        "tpot_s": 0.05,
        "num_prompt_tokens": 256,
        "max_output_tokens": 32,
    }
    fields.update(overrides)
    return Flight(request_id, **fields)


def tight_long_prefill(request_id: str) -> Flight:
    """An admitted 3,000-token prompt due just after its isolated prefill time: it fills the
    replica's prefill capacity until its deadline."""
    return make_flight(
        request_id, num_prompt_tokens=3000, ttft_s=1.08 * PREDICTOR.isolated_prefill_s(3000)
    )


def loose_decoder(request_id: str) -> Flight:
    """An admitted short request already decoding, with a loose 250 ms TPOT and slack."""
    return make_flight(
        request_id,
        arrival_s=NOW_S - 1.0,
        ttft_s=0.5,
        tpot_s=0.25,
        num_prompt_tokens=64,
        max_output_tokens=64,
        num_output_tokens=2,
        first_token_s=NOW_S - 0.9,
    )

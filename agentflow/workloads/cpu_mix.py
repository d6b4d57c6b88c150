"""A mixed multi-SLO workload sized for the CPU engine (SmolLM2-135M on 2 cores).

Coding-like requests (TTFT 5x, tight TPOT), summarization-like requests (long prompts, tight
TTFT 3x, loose TPOT) and chat (loose both), with lengths resampled from the Azure LLM
inference traces and scaled down to a 135M model on 2 cores. Arrivals are Poisson or bursty
(the Azure code trace's timestamps); `at_rate` time-scales one fixed workload, so the same
requests arrive at every rate. Used by the real-engine capacity and sim-vs-real benchmarks;
`simulated_capacity_rps` runs the same workload on the simulator with the engine's fitted
step-time model, to start a real capacity search near its answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from agentflow.engine.sim import PolicyOptions, RequestSpec
from agentflow.engine.sim.profiles import SimProfile, cpu_profile
from agentflow.runtime.replay import TraceRequest
from agentflow.workloads.arrivals import PoissonArrivals, TraceArrivals
from agentflow.workloads.azure import load_azure_trace
from agentflow.workloads.capacity import ProbeResult, bisect_capacity, probe

if TYPE_CHECKING:
    from agentflow.planner import StepTimePredictor

__all__ = [
    "CLASSES",
    "REFERENCE_DECODE_MS",
    "SIM_POLICY",
    "SLOClass",
    "at_rate",
    "build_workload",
    "classes_for",
    "engine_profile",
    "lone_decode_ms",
    "sim_specs",
    "simulated_capacity_rps",
    "slowdown",
]


@dataclass(frozen=True, slots=True)
class SLOClass:
    """One request class of the mix: its share, SLO and length scaling."""

    name: str
    share: float
    ttft_slowdown: float
    tpot_ms: float
    prompt_scale: float
    prompt_range: tuple[int, int]
    output_range: tuple[int, int]
    source: str


REFERENCE_DECODE_MS = 20.0
"""The single-stream decode step the classes' TPOTs are set against (DESIGN.md §6)."""
CODING_CONTEXT_TOKENS = 256
"""Cached tokens of a typical coding request mid-decode: where `lone_decode_ms` is read."""

# Tight TPOT = 2.5x the reference single-stream decode step, loose = 7.5x.
CLASSES = (
    SLOClass("coding", 0.4, 5.0, 50.0, 1 / 16, (32, 384), (32, 128), "code"),
    SLOClass("summarization", 0.3, 3.0, 150.0, 1 / 4, (256, 1024), (16, 48), "conv"),
    SLOClass("chat", 0.3, 5.0, 150.0, 1 / 8, (16, 256), (16, 96), "conv"),
)


def classes_for(lone_decode_ms: float) -> tuple[SLOClass, ...]:
    """The classes on a machine whose single-stream decode step takes `lone_decode_ms`.

    TTFT budgets already follow the machine (a multiple of its predicted prefill); TPOT must
    too, or a CPU slower than the reference misses every tight-TPOT request under any policy
    (a 2-core float32 Xeon decodes one sequence in 87 ms, against a 50 ms tight TPOT). On a
    machine at least as fast as the reference the TPOTs stay as set, so results compare.

    Raises:
        ValueError: `lone_decode_ms` is not a positive finite number.
    """
    scale = slowdown(lone_decode_ms)
    return tuple(replace(c, tpot_ms=c.tpot_ms * scale) for c in CLASSES)


def lone_decode_ms(predictor: StepTimePredictor) -> float:
    """The engine's single-stream decode step of a typical coding request, in ms."""
    return predictor.step_time_s(0, 1, CODING_CONTEXT_TOKENS) * 1e3


def slowdown(lone_decode_ms: float) -> float:
    """How much slower than the reference this machine decodes (1.0 if it is not slower).

    Raises:
        ValueError: `lone_decode_ms` is not a positive finite number.
    """
    if not 0.0 < lone_decode_ms < float("inf"):
        raise ValueError(f"lone_decode_ms must be a positive number of ms, got {lone_decode_ms}")
    return max(1.0, lone_decode_ms / REFERENCE_DECODE_MS)


def build_workload(
    num_requests: int, arrivals: str, seed: int, classes: tuple[SLOClass, ...] = CLASSES
) -> list[TraceRequest]:
    """The fixed request mix, with arrivals at rate 1 (time-scaled per probe).

    `classes` changes only the SLOs (`classes_for`): lengths and arrivals do not depend on it.
    """
    rng = np.random.default_rng(seed)
    traces = {kind: load_azure_trace(kind) for kind in ("code", "conv")}
    process: Any = (
        TraceArrivals("azure_code", traces["code"].arrival_s, offset=1000)
        if arrivals == "bursty"
        else PoissonArrivals()
    )
    times = process.times(num_requests, 1.0, rng)
    kinds = rng.choice(len(classes), size=num_requests, p=[c.share for c in classes])
    requests = []
    for arrival_s, kind in zip(times, kinds, strict=True):
        cls = classes[int(kind)]
        trace = traces[cls.source]
        row = int(rng.integers(0, len(trace)))
        prompt = int(np.clip(trace.prompt_tokens[row] * cls.prompt_scale, *cls.prompt_range))
        output = int(np.clip(trace.output_tokens[row], *cls.output_range))
        requests.append(
            TraceRequest(
                arrival_s=float(arrival_s),
                prompt_tokens=prompt,
                output_tokens=output,
                tpot_ms=cls.tpot_ms,
                ttft_slowdown=cls.ttft_slowdown,
                slo_class=cls.name,
            )
        )
    return requests


def at_rate(workload: list[TraceRequest], rate_rps: float) -> list[TraceRequest]:
    """The same requests, arrivals time-scaled to `rate_rps` (workload is built at 1 req/s)."""
    return [
        TraceRequest(
            arrival_s=r.arrival_s / rate_rps,
            prompt_tokens=r.prompt_tokens,
            output_tokens=r.output_tokens,
            tpot_ms=r.tpot_ms,
            ttft_slowdown=r.ttft_slowdown,
            slo_class=r.slo_class,
        )
        for r in workload
    ]


SIM_POLICY = {"fcfs": "vllm", "edf": "vllm", "agentflow": "agentflow"}
"""The simulator's policy for each real engine's. The simulator has no deadline-ordered stock
vLLM: FCFS stands in for EDF, which has served at least as much in every run so far."""


def sim_specs(workload: list[TraceRequest], predictor: StepTimePredictor) -> list[RequestSpec]:
    """The workload as simulated requests, TTFT budgets set as the real replay sets them."""
    return [
        RequestSpec(
            request_id=str(i),
            arrival_s=r.arrival_s,
            num_prompt_tokens=r.prompt_tokens,
            num_output_tokens=r.output_tokens,
            ttft_s=_ttft_budget_s(r, predictor),
            tpot_s=r.tpot_ms / 1e3,
        )
        for i, r in enumerate(workload)
    ]


def _ttft_budget_s(request: TraceRequest, predictor: StepTimePredictor) -> float:
    """`runtime.replay`'s rule: the absolute budget, else a multiple of the isolated prefill."""
    if request.ttft_ms is not None:
        return request.ttft_ms / 1e3
    slowdown = request.ttft_slowdown or 1.0
    return slowdown * predictor.isolated_prefill_s(request.prompt_tokens)


def engine_profile(
    predictor: StepTimePredictor, kv_cache: tuple[int, int] | None = None
) -> SimProfile:
    """The simulated CPU engine (`cpu_profile`: its seat and token limits) as a run measured it.

    `predictor`'s step times, and the started engine's KV cache as (blocks, tokens per block)
    when given (`VLLMEngine.kv_cache_shape`: in float32 the same memory holds half the bf16
    profile's blocks).
    """
    profile = replace(cpu_profile(), pieces=predictor.pieces)
    if kv_cache is not None:
        profile = replace(profile, kv_blocks_total=kv_cache[0], block_size=kv_cache[1])
    return profile


def simulated_capacity_rps(
    workload: list[TraceRequest],
    policy: str,
    predictor: StepTimePredictor,
    *,
    start_rps: float,
    resolution: float = 0.05,
    tpot_tolerance: float = 0.0,
    kv_cache: tuple[int, int] | None = None,
) -> float:
    """Capacity of the real engine's `policy` on `workload`, as the simulator predicts it.

    The simulated engine is `engine_profile(predictor, kv_cache)` with the real engine's
    `tpot_tolerance`. Used to seed a real capacity search, not in place of one: the real probes
    decide.
    """
    profile = engine_profile(predictor, kv_cache)

    def evaluate(rate_rps: float) -> ProbeResult:
        specs = sim_specs(at_rate(workload, rate_rps), predictor)
        options = PolicyOptions(
            tightest_tpot_s=min(s.tpot_s for s in specs), tpot_tolerance=tpot_tolerance
        )
        return probe(specs, SIM_POLICY[policy], profile, options, rate_rps=rate_rps)

    found = bisect_capacity(evaluate, start_rps=start_rps, resolution=resolution, min_rps=1e-3)
    return found.capacity_rps

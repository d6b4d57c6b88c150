"""The profile catalog: step-time coefficients and KV capacity per (model, GPU, tensor parallel).

Two kinds of entries:

* **fitted** — the SLOs-Serve authors' own fitted coefficients (repo gulang2019/SLOServe,
  commit c9dbc0d, `SLOsServe/scheduler/batch_timer.py`, `PROFILES`; transcribed in
  shared/reference/slos_serve.md §3). Their model is `T = max_i(k1_i*n_tokens + k2_i*steps +
  b_i)`; without speculation `steps = 0` (no drafter step), and a decode token counts like a
  prefill token. We keep k1 as the per-prefill-token and per-decode-request slope, b as the
  constant, and add the roofline attention term below (their paper-era model has none).
  Where a second piece is elided in the reference ("…") we keep the first piece only.
* **derived** — roofline estimates for the combinations the authors did not publish:
  per token `2*P / (tp * peak * MFU)` with MFU = 0.6 (their fits imply 0.52–0.63: OPT-6.7B
  A100 0.62, OPT-13B A100 TP2 0.58, OPT-30B A100 TP4 0.52, OPT-13B H100 0.63); constant
  `weights / (tp * HBM * 0.8)` plus a fixed overhead of 17 ms + 6 ms * log2(tp) (their fitted
  constants minus the weight-read time: 16.6 ms OPT-6.7B A100, 17.7 ms OPT-13B H100, 23.7 ms
  OPT-13B A100 TP2, 28.7 ms OPT-30B A100 TP4).

Draft models (speculative decoding): where the authors published a fitted drafter step (`k2`,
OPT-125m drafting for OPT) the profile carries it as `draft_step_s`, the time of one sequential
draft step for the whole batch. The acceptance rate is the authors' CLI default (`--alpha 0.6`;
their `Problem.alpha` default is 0.8) and the longest verify 8 (their CLI allows 10).

Every profile prices a prefill (query, key) pair at `4 * layers * hidden / (tp * peak * MFU)`,
the attention FLOPs, which carries the quadratic part of long prefills. A derived profile also
prices the decode's KV read, memory-bound: `per_context_token_s = kv_bytes_per_token / (tp *
HBM * MBU)` per cached token a decode attends to (for Llama-2-7B on an H100, 196 ns: a decode
over 2048 cached tokens reads 1 GB). A fitted profile keeps the authors' form, where one
context coefficient (the pair price) serves both and decode costs what a prompt token does:
their constants were fitted on their own serving runs, decode reads included.

Measured on a real H100 (benchmarks/gpu_step_times.py: Llama-2-7B, OPT-6.7B and OPT-13B
shaped forward passes, random bf16 weights, PyTorch GEMMs and attention, decodes replayed from
CUDA graphs), measured / profile: a prompt token 19.6 / 22.7 µs (llama2-7b-h100, derived),
18.5 / 22.6 (opt-7b-h100, derived), 37.0 / 41.8 (opt-13b-h100, the authors' fit); a prefill
pair 1.3 / 0.88 ns, 1.3 / 0.88, 1.6 / 1.4; a decode's cached token 171 / 196 ns, 170 / 196,
286 / 1.4 (the fitted form has no KV term; before this term the derived profiles charged the
pair price too, 200 times too little); the weight read of a decode step 5.9, 5.7 and 10.3 ms.
What kernels cannot show is the serving engine's own per-step overhead, the 17 ms above.

KV capacity assumes vLLM's `gpu_memory_utilization = 0.9`, FP16 KV, 16-token blocks, and 2 GB
per GPU of activations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentflow.engine.sim.profiles.hardware import GPUS, MODELS, GPUSpec, ModelSpec
from agentflow.planner import AffinePiece

__all__ = [
    "DRAFT_ACCEPTANCE",
    "DRAFT_MAX_SPEC_LEN",
    "MFU",
    "ProfileEntry",
    "build_catalog",
    "derived_pieces",
    "kv_blocks",
]

MFU = 0.6
MBU = 0.8
OVERHEAD_S = 0.017
TP_OVERHEAD_S = 0.006
GPU_MEMORY_UTILIZATION = 0.9
ACTIVATION_BYTES_PER_GPU = 2e9
BLOCK_SIZE = 16


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One catalog row before it becomes a `SimProfile`."""

    name: str
    model: str
    gpu: str
    num_gpus: int
    pieces: tuple[AffinePiece, ...]
    kv_blocks_total: int
    kv_bytes_per_token: int
    source: str
    disaggregated_half: str | None = None
    """Profile of one half of the GPUs, for DistServe's prefill and decode instances."""
    draft_step_s: float | None = None
    """Fitted time of one draft step (OPT-125m drafter), or None: no draft model known."""


def _attention_coefficient(model: ModelSpec, gpu: GPUSpec, tp: int) -> float:
    return model.attention_flops_per_pair / (tp * gpu.peak_flops * MFU)


def _piece(k1: float, b: float, context: float, pair: float | None = None) -> AffinePiece:
    return AffinePiece(
        constant_s=b,
        per_prefill_token_s=k1,
        per_decode_req_s=k1,
        per_context_token_s=context,
        per_spec_token_s=k1,
        per_prefill_pair_s=pair,
    )


def _kv_read_coefficient(model: ModelSpec, gpu: GPUSpec, tp: int) -> float:
    return model.kv_bytes_per_token / (tp * gpu.hbm_bytes_per_s * MBU)


def derived_pieces(model: ModelSpec, gpu: GPUSpec, tp: int) -> tuple[AffinePiece, ...]:
    """Roofline coefficients (see the module docstring)."""
    per_token = model.flops_per_token / (tp * gpu.peak_flops * MFU)
    constant = model.weight_bytes / (tp * gpu.hbm_bytes_per_s * MBU)
    constant += OVERHEAD_S + TP_OVERHEAD_S * math.log2(tp)
    kv_read = _kv_read_coefficient(model, gpu, tp)
    return (_piece(per_token, constant, kv_read, _attention_coefficient(model, gpu, tp)),)


def kv_blocks(model: ModelSpec, gpu: GPUSpec, tp: int) -> int:
    """KV blocks that fit beside the weights on `tp` GPUs."""
    free = tp * (gpu.memory_bytes * GPU_MEMORY_UTILIZATION - ACTIVATION_BYTES_PER_GPU)
    free -= model.weight_bytes
    return max(1, int(free // (model.kv_bytes_per_token * BLOCK_SIZE)))


_AUTHORS = "SLOs-Serve fitted coefficients (gulang2019/SLOServe@c9dbc0d batch_timer.py PROFILES)"
_ROOFLINE = "roofline-derived (GPU datasheet peak FLOP/s and HBM bandwidth; MFU 0.6, MBU 0.8)"

DRAFT_ACCEPTANCE = 0.6
DRAFT_MAX_SPEC_LEN = 8
# The authors' drafter step k2 (OPT-125m), per profile: OPT-6.7B 3.46e-3, OPT-13B TP2 3.34e-3,
# OPT-30B TP4 2.80e-3 (the first piece's k2 where two are given).
_DRAFT_STEP_S = {"opt-7b-a100": 3.46e-3, "opt-13b-a100-tp2": 3.34e-3, "opt-30b-a100-tp4": 2.80e-3}

# name: (model, gpu, tp, fitted [(k1, b), ...] or None, disaggregated half)
_ROWS: dict[str, tuple[str, str, int, tuple[tuple[float, float], ...] | None, str | None]] = {
    # OPT-6.7B, 1 GPU: [6.88e-5, 0, 2.48e-2 | 7.52e-5, 0, 3.03e-3]
    "opt-7b-a100": ("opt-7b", "a100", 1, ((6.88e-5, 2.48e-2), (7.52e-5, 3.03e-3)), None),
    "opt-13b-a100": ("opt-13b", "a100", 1, None, None),
    # OPT-13B, TP2: [7.21e-5, 3.34e-3, 3.17e-2 | 0, 3.01e-3, 1.2e-5] at steps = 0
    "opt-13b-a100-tp2": ("opt-13b", "a100", 2, ((7.21e-5, 3.17e-2),), "opt-13b-a100"),
    "opt-30b-a100-tp2": ("opt-30b", "a100", 2, None, None),
    # OPT-30B, TP4: [9.31e-5, 2.80e-3, 3.79e-2 | …]
    "opt-30b-a100-tp4": ("opt-30b", "a100", 4, ((9.31e-5, 3.79e-2),), "opt-30b-a100-tp2"),
    # ToolLLaMA-2-7b-v2 (a Llama-2-7B fine-tune), 1 GPU: [6.57e-5, 0, 2.75e-2 | …]
    "llama2-7b-a100": ("llama2-7b", "a100", 1, ((6.57e-5, 2.75e-2),), None),
    "opt-7b-h100": ("opt-7b", "h100", 1, None, None),
    # "opt-13b (H100)", 1 GPU: [4.18e-5, 0, 2.74e-2 | …]
    "opt-13b-h100": ("opt-13b", "h100", 1, ((4.18e-5, 2.74e-2),), None),
    "opt-13b-h100-tp2": ("opt-13b", "h100", 2, None, "opt-13b-h100"),
    "opt-30b-h100": ("opt-30b", "h100", 1, None, None),
    "opt-30b-h100-tp2": ("opt-30b", "h100", 2, None, "opt-30b-h100"),
    "llama2-7b-h100": ("llama2-7b", "h100", 1, None, None),
}


def build_catalog() -> dict[str, ProfileEntry]:
    """Every GPU profile, by name."""
    catalog: dict[str, ProfileEntry] = {}
    for name, (model_key, gpu_key, tp, fitted, half) in _ROWS.items():
        model, gpu = MODELS[model_key], GPUS[gpu_key]
        if fitted is None:
            pieces, source = derived_pieces(model, gpu, tp), _ROOFLINE
        else:
            context = _attention_coefficient(model, gpu, tp)
            pieces = tuple(_piece(k1, b, context) for k1, b in fitted)
            source = f"{_AUTHORS}; attention term {_ROOFLINE}"
        catalog[name] = ProfileEntry(
            name=name,
            model=model.name,
            gpu=gpu.name,
            num_gpus=tp,
            pieces=pieces,
            kv_blocks_total=kv_blocks(model, gpu, tp),
            kv_bytes_per_token=model.kv_bytes_per_token,
            source=source,
            disaggregated_half=half,
            draft_step_s=_DRAFT_STEP_S.get(name),
        )
    return catalog

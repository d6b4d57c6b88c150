"""Llama-2-7B step times on this machine's GPU, against the simulator's derived profile.

The simulator's GPU profiles for model/GPU pairs the SLOs-Serve authors did not fit are
roofline estimates (agentflow/engine/sim/profiles/catalog.py: a prompt token costs
2·params / (peak · MFU 0.6), a pair of attention positions 4·layers·hidden / (peak · MFU)).
This script measures what those coefficients describe, on a real GPU: the forward pass of a
Llama-2-7B-shaped model (random bf16 weights, PyTorch GEMMs and scaled-dot-product attention,
logits for the last position only, as vLLM computes them), for

* prefill steps of one prompt of 256 to 8192 tokens, and
* decode steps of 1 to 128 requests over 512 or 2048 cached tokens each, replayed from a CUDA
  graph (as vLLM replays decode steps), so Python launch overhead is not counted.

It fits the predictor's affine form to each and prints the fitted slopes beside the profile's.
What it cannot check: the profile's constant also carries a serving engine's own per-step
overhead (scheduling, sampling, detokenisation: 17 ms in the authors' fits of their vLLM),
which kernels alone do not have. No weights are downloaded: the shapes are Llama-2-7B's.

Rerun (needs a CUDA GPU and PyTorch; no vLLM): `python benchmarks/gpu_step_times.py`
(writes benchmarks/results/gpu_step_times.json). `--tiny` runs a small model on the CPU, to
check the script.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int

    @property
    def params(self) -> int:
        per_layer = 4 * self.hidden * self.hidden + 3 * self.hidden * self.ffn
        return self.layers * per_layer + 2 * self.vocab * self.hidden


LLAMA2_7B = Shape(layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000)
TINY = Shape(layers=2, hidden=256, heads=4, ffn=688, vocab=1000)


class Model:
    """The GEMMs and attention of a Llama forward pass, one weight set shared by every layer's
    shape but allocated per layer (so each step reads every layer's weights from memory)."""

    def __init__(self, shape: Shape, device: str, dtype: torch.dtype) -> None:
        self.shape = shape
        g = torch.Generator(device=device).manual_seed(0)

        def weight(rows: int, cols: int) -> torch.Tensor:
            w = torch.randn(rows, cols, generator=g, device=device, dtype=dtype)
            return w / math.sqrt(cols)

        self.layers = [
            {
                "qkv": weight(3 * shape.hidden, shape.hidden),
                "o": weight(shape.hidden, shape.hidden),
                "gate_up": weight(2 * shape.ffn, shape.hidden),
                "down": weight(shape.hidden, shape.ffn),
            }
            for _ in range(shape.layers)
        ]
        self.lm_head = weight(shape.vocab, shape.hidden)

    def _mlp_and_proj(
        self, x: torch.Tensor, attn: torch.Tensor, w: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        x = x + attn @ w["o"].T
        gate, up = (F.rms_norm(x, (x.shape[-1],)) @ w["gate_up"].T).chunk(2, dim=-1)
        return x + (F.silu(gate) * up) @ w["down"].T

    def prefill(self, x: torch.Tensor) -> torch.Tensor:
        """x: (tokens, hidden) of one prompt; returns the last position's logits."""
        s = self.shape
        n, head_dim = x.shape[0], s.hidden // s.heads
        for w in self.layers:
            q, k, v = (F.rms_norm(x, (s.hidden,)) @ w["qkv"].T).chunk(3, dim=-1)
            q, k, v = (t.view(1, n, s.heads, head_dim).transpose(1, 2) for t in (q, k, v))
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = self._mlp_and_proj(x, attn.transpose(1, 2).reshape(n, s.hidden), w)
        return F.rms_norm(x[-1:], (s.hidden,)) @ self.lm_head.T

    def decode(
        self, x: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """x: (batch, hidden), one new token per request; caches: per layer (K, V) of shape
        (batch, heads, context, head_dim). Returns logits for every request."""
        s = self.shape
        b, head_dim = x.shape[0], s.hidden // s.heads
        for w, (k_cache, v_cache) in zip(self.layers, caches, strict=True):
            q, _k, _v = (F.rms_norm(x, (s.hidden,)) @ w["qkv"].T).chunk(3, dim=-1)
            q = q.view(b, s.heads, 1, head_dim)
            attn = F.scaled_dot_product_attention(q, k_cache, v_cache)
            x = self._mlp_and_proj(x, attn.reshape(b, s.hidden), w)
        return F.rms_norm(x, (s.hidden,)) @ self.lm_head.T


def _timed_ms(fn: Callable[[], Any], device: str, repeats: int) -> float:
    for _ in range(2):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def measure(
    shape: Shape,
    device: str,
    prompt_lengths: Sequence[int],
    decode_shapes: Sequence[tuple[int, int]],
    repeats: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Median step times of every prefill length and every (batch, context) decode shape."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = Model(shape, device, dtype)
    head_dim = shape.hidden // shape.heads
    prefill = []
    with torch.inference_mode():
        for n in prompt_lengths:
            x = torch.randn(n, shape.hidden, device=device, dtype=dtype)
            prefill.append(
                {"tokens": n, "ms": _timed_ms(partial(model.prefill, x), device, repeats)}
            )
            print(f"prefill {n:5d} tokens: {prefill[-1]['ms']:8.2f} ms", flush=True)
        decode = []
        for b, context in decode_shapes:
            caches = [
                tuple(
                    torch.randn(b, shape.heads, context, head_dim, device=device, dtype=dtype)
                    for _ in range(2)
                )
                for _ in range(shape.layers)
            ]
            x = torch.randn(b, shape.hidden, device=device, dtype=dtype)
            ms = _timed_ms(_decode_step(model, x, caches, device), device, repeats)
            decode.append({"batch": b, "context": context, "ms": ms})
            print(f"decode batch {b:4d} context {context:5d}: {ms:8.2f} ms", flush=True)
            del caches, x
            if device == "cuda":
                torch.cuda.empty_cache()
    return prefill, decode


def _decode_step(
    model: Model, x: torch.Tensor, caches: list[Any], device: str
) -> Callable[[], Any]:
    """One decode step to time: on a GPU, the replay of a captured CUDA graph (as vLLM runs
    decodes), so that Python's kernel launches are not what is measured."""

    def step() -> None:
        model.decode(x, caches)

    if device != "cuda":
        return step
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()  # warm-up outside the capture: lazy initialisation must not be recorded
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def fit(prefill: list[dict[str, Any]], decode: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares in the predictor's terms: prefill ms = c + a·n + p·n(n+1)/2; decode ms =
    c + d·batch + r·batch·context."""
    n = np.array([r["tokens"] for r in prefill], dtype=float)
    y = np.array([r["ms"] for r in prefill])
    (c_p, a, p), *_ = np.linalg.lstsq(np.c_[np.ones_like(n), n, n * (n + 1) / 2], y, rcond=None)
    b = np.array([r["batch"] for r in decode], dtype=float)
    ctx = np.array([r["context"] for r in decode], dtype=float)
    y = np.array([r["ms"] for r in decode])
    (c_d, d, r_), *_ = np.linalg.lstsq(np.c_[np.ones_like(b), b, b * ctx], y, rcond=None)
    return {
        "prefill_constant_ms": float(c_p),
        "per_prefill_token_us": float(a * 1e3),
        "per_prefill_pair_ns": float(p * 1e6),
        "decode_constant_ms": float(c_d),
        "per_decode_req_us": float(d * 1e3),
        "per_context_token_ns": float(r_ * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small model on the CPU")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    prompts: tuple[int, ...]
    if args.tiny:
        shape, device = TINY, "cpu"
        prompts, decode_shapes = (64, 128, 256), [(1, 64), (4, 64), (4, 128)]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_step_times.py needs a CUDA GPU (or --tiny)")
        shape, device = LLAMA2_7B, "cuda"
        prompts = (256, 512, 1024, 2048, 4096, 8192)
        # KV of 128 requests x 2048 tokens would not fit beside the weights: 2048 stops at 32.
        decode_shapes = [(b, 512) for b in (1, 8, 32, 64, 128)] + [(b, 2048) for b in (1, 8, 32)]
    prefill, decode = measure(shape, device, prompts, decode_shapes, args.repeats)
    measured = fit(prefill, decode)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result: dict[str, Any] = {
        "model_shape": "llama2-7b" if not args.tiny else "tiny",
        "params": shape.params,
        "device": gpu,
        "torch": torch.__version__,
        "prefill": prefill,
        "decode": decode,
        "fitted": measured,
    }
    try:  # the simulator's profile, where agentflow is importable (not needed to measure)
        from agentflow.engine.sim.profiles import get_profile

        piece = get_profile("llama2-7b-h100").pieces[0]
        result["profile_llama2_7b_h100"] = {
            "constant_ms": piece.constant_s * 1e3,
            "per_prefill_token_us": piece.per_prefill_token_s * 1e6,
            "per_prefill_pair_ns": piece.pair_s * 1e9,
            "per_decode_req_us": piece.per_decode_req_s * 1e6,
            "per_context_token_ns": piece.per_context_token_s * 1e9,
        }
    except ImportError:
        pass
    print(json.dumps({k: result[k] for k in result if k not in ("prefill", "decode")}, indent=2))
    if not args.tiny:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "gpu_step_times.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

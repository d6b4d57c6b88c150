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
(Llama-2-7B, OPT-6.7B and OPT-13B shapes; writes benchmarks/results/gpu_step_times.json),
then, where agentflow is installed, `python benchmarks/gpu_step_times.py --compare
benchmarks/results/gpu_step_times.json` adds and prints the simulator's H100 profiles beside
the measured terms. `--tiny` runs a small model on the CPU, to check the script.
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
    gated: bool = True
    """Llama's gated MLP (gate, up, down) or OPT's plain one (fc1, ReLU, fc2)."""

    @property
    def params(self) -> int:
        mlp = (3 if self.gated else 2) * self.hidden * self.ffn
        return self.layers * (4 * self.hidden * self.hidden + mlp) + 2 * self.vocab * self.hidden

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.hidden * 2


SHAPES = {
    "llama2-7b": Shape(layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000),
    "opt-7b": Shape(layers=32, hidden=4096, heads=32, ffn=16384, vocab=50272, gated=False),
    "opt-13b": Shape(layers=40, hidden=5120, heads=40, ffn=20480, vocab=50272, gated=False),
}
"""The measured shapes, by the simulator's model key; each is compared with its H100 profile
(`llama2-7b-h100` and `opt-7b-h100` are roofline-derived, `opt-13b-h100` the authors' fit)."""
TINY = Shape(layers=2, hidden=256, heads=4, ffn=688, vocab=1000)
MAX_KV_BYTES = 36e9
"""Decode shapes whose KV cache would pass this are skipped (the weights need room too)."""


class Model:
    """The GEMMs and attention of a decoder-only forward pass, weights allocated per layer (so
    each step reads every layer's weights from memory, as a real model does)."""

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
                "up": weight((2 if shape.gated else 1) * shape.ffn, shape.hidden),
                "down": weight(shape.hidden, shape.ffn),
            }
            for _ in range(shape.layers)
        ]
        self.lm_head = weight(shape.vocab, shape.hidden)

    def _mlp_and_proj(
        self, x: torch.Tensor, attn: torch.Tensor, w: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        x = x + attn @ w["o"].T
        h = F.rms_norm(x, (x.shape[-1],)) @ w["up"].T
        if self.shape.gated:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.relu(h)
        return x + h @ w["down"].T

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


def _profile_terms(model_key: str) -> dict[str, float]:
    """The simulator's H100 profile for `model_key`, in the fitted terms' units."""
    from agentflow.engine.sim.profiles import get_profile

    piece = get_profile(f"{model_key}-h100").pieces[0]
    return {
        "constant_ms": piece.constant_s * 1e3,
        "per_prefill_token_us": piece.per_prefill_token_s * 1e6,
        "per_prefill_pair_ns": piece.pair_s * 1e9,
        "per_decode_req_us": piece.per_decode_req_s * 1e6,
        "per_context_token_ns": piece.per_context_token_s * 1e9,
    }


def compare(path: Path) -> None:
    """Add each measured model's simulator profile to the result file and print both."""
    result = json.loads(path.read_text())
    keys = ("per_prefill_token_us", "per_prefill_pair_ns", "per_context_token_ns")
    for model_key, entry in result["models"].items():
        entry["profile_h100"] = profile = _profile_terms(model_key)
        print(f"{model_key} on {result['device']} (measured / {model_key}-h100 profile):")
        for key in keys:
            print(f"  {key:22} {entry['fitted'][key]:9.3f} / {profile[key]:9.3f}")
        print(
            f"  decode constant (ms)   {entry['fitted']['decode_constant_ms']:9.3f} / "
            f"{profile['constant_ms']:9.3f} (the profile's includes engine overhead)"
        )
    path.write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small model on the CPU")
    parser.add_argument("--models", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--compare", type=Path, help="add the simulator's profiles to this result file (no GPU)"
    )
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return
    prompts: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192)
    candidates = [(b, 512) for b in (1, 8, 32, 64, 128)] + [(b, 2048) for b in (1, 8, 32)]
    device = "cuda"
    shapes = dict(SHAPES.items())
    if args.tiny:
        device, shapes = "cpu", {"tiny": TINY}
        prompts, candidates = (64, 128, 256), [(1, 64), (4, 64), (4, 128)]
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_step_times.py needs a CUDA GPU (or --tiny)")
    else:
        shapes = {key: SHAPES[key] for key in args.models}
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "models": {},
    }
    for key, shape in shapes.items():
        print(f"{key}: {shape.params / 1e9:.2f} B parameters", flush=True)
        decode_shapes = [
            (b, c) for b, c in candidates if b * c * shape.kv_bytes_per_token <= MAX_KV_BYTES
        ]
        prefill, decode = measure(shape, device, prompts, decode_shapes, args.repeats)
        result["models"][key] = {
            "params": shape.params,
            "prefill": prefill,
            "decode": decode,
            "fitted": fit(prefill, decode),
        }
        print(json.dumps(result["models"][key]["fitted"], indent=2), flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    if not args.tiny:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "gpu_step_times.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

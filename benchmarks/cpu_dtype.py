"""CPU engine speed in bfloat16 against float32: the case for `dtype='auto'`.

Runs the real vLLM CPU engine with SmolLM2-135M twice, once per dtype, on the same prompts:
one program alone, then four at once, each generating 32 tokens. Step times come from our
scheduler's trace (the step's shape and its wall time). Reports per dtype the median decode
step with 1 and with 4 sequences and the median prefill cost per prompt token, and the ratio
bfloat16 / float32 of each (above 1: float32 is faster). On a CPU with native bfloat16
(AVX512-BF16 or AMX) `auto` picks bfloat16; without it, float32.

Rerun: `.venv/bin/python benchmarks/cpu_dtype.py` (about 2 minutes on 2 cores)
Writes benchmarks/results/cpu_dtype.json.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import agentflow as af
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.engine.vllm.dtype import cpu_has_native_bf16, resolve_dtype
from agentflow.models import resolve_model
from agentflow.runtime import Runtime

RESULTS = Path(__file__).parent / "results"
DTYPES = ("bfloat16", "float32")


@af.stage(ttft_ms=60_000, tpot_ms=5_000, max_tokens=32)
def story(topic: str) -> str:
    return f"Tell me a short story about {topic}, in plain words, for a child."


@af.agent
async def teller(ctx: af.Context, topic: str) -> str:
    return await ctx.run(story, topic)


async def _measure(dtype: str, trace: Path) -> dict[str, Any]:
    config = VLLMEngineConfig(
        model=resolve_model(None), dtype=dtype, trace_path=trace, kv_cache_mib=256
    )
    engine = VLLMEngine(config)
    await engine.start()
    try:
        runtime = Runtime(engine, ignore_eos=True)
        await runtime.run_many(teller, [{"topic": "a cat"}])  # warm-up
        for batch in (1, 4):
            await runtime.run_many(
                teller, [{"topic": f"animal {i}"} for i in range(batch)], concurrency=batch
            )
    finally:
        await engine.shutdown()
    steps = [json.loads(line) for line in trace.read_text().splitlines()]
    steps = [s for s in steps if s["event"] == "step"]

    def decode_ms(n: int) -> float:
        times = [
            s["step_ms"]
            for s in steps
            if s["num_prefill_tokens"] == 0 and s["num_decode_reqs"] == n
        ]
        return float(statistics.median(times))

    per_token = [
        s["step_ms"] / s["num_prefill_tokens"]
        for s in steps
        if s["num_prefill_tokens"] >= 16 and s["num_decode_reqs"] == 0
    ]
    return {
        "decode_1_ms": decode_ms(1),
        "decode_4_ms": decode_ms(4),
        "prefill_ms_per_token": statistics.median(per_token),
        "num_steps": len(steps),
    }


def main() -> None:
    started = time.monotonic()
    by_dtype: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in DTYPES:
            by_dtype[dtype] = anyio.run(_measure, dtype, Path(tmp) / f"{dtype}.jsonl")
    bf16, fp32 = by_dtype["bfloat16"], by_dtype["float32"]
    ratios = {key: bf16[key] / fp32[key] for key in ("decode_1_ms", "decode_4_ms")}
    ratios["prefill_ms_per_token"] = bf16["prefill_ms_per_token"] / fp32["prefill_ms_per_token"]
    print(f"{'':22}{'bfloat16':>10}{'float32':>10}{'bf16/fp32':>11}")
    for key, label in (
        ("decode_1_ms", "decode, 1 seq (ms)"),
        ("decode_4_ms", "decode, 4 seqs (ms)"),
        ("prefill_ms_per_token", "prefill (ms/token)"),
    ):
        print(f"{label:22}{bf16[key]:10.2f}{fp32[key]:10.2f}{ratios[key]:10.2f}x")
    native = cpu_has_native_bf16()
    print(f"native bf16: {native}; dtype='auto' here = {resolve_dtype('auto')}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "model": resolve_model(None).name,
        "native_bf16": native,
        "auto_dtype": resolve_dtype("auto"),
        "by_dtype": by_dtype,
        "ratio_bf16_over_fp32": ratios,
        "wall_s": time.monotonic() - started,
    }
    (RESULTS / "cpu_dtype.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS / 'cpu_dtype.json'}")


if __name__ == "__main__":
    main()

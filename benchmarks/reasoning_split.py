"""Reasoning with two SLO tiers: split into two requests, and how much prefix caching saves.

agentflow serves a reasoning agent's "think" (tight TPOT) and "answer" (loose TPOT) as two
requests, each under its own SLO, instead of switching one request's tier at a marker mid-
generation (which vLLM's scheduler API cannot express per request without a custom stop/resume
protocol). The cost of splitting is the answer's prefill re-reading the context. This benchmark
measures that cost on the real engine with prefix caching on: the answer prompt either repeats
the think prompt verbatim as its prefix (the KV blocks of the shared prefix are reused) or
rephrases it (no reuse). Same model, same lengths, interleaved runs.

Rerun: `.venv/bin/python benchmarks/reasoning_split.py [--runs N]`
Writes benchmarks/results/reasoning_split.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import anyio

import agentflow as af
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.models import resolve_model

RESULTS = Path(__file__).parent / "results"
DOCUMENT = (
    "Serving systems batch many requests to use the hardware well. A request has a prefill that "
    "reads the whole prompt and a decode that writes one token per step. A long prefill next to "
    "many decodes slows every decode down, so prompts are split into chunks. Applications want "
    "different latencies: summaries should start fast, code should stream fast, chat only has "
    "to keep up with reading. "
) * 6


@af.stage(ttft_ms=3000, tpot_ms=50, max_tokens=48, tier="tight")
def think(document: str, question: str) -> str:
    return f"{document}\nQuestion: {question}\nThink step by step."


@af.stage(ttft_ms=3000, tpot_ms=150, max_tokens=8, tier="loose", name="answer")
def answer_shared(document: str, question: str, think: str) -> str:
    # Same text as think's prompt first: its KV blocks are already in the prefix cache.
    return f"{document}\nQuestion: {question}\nThink step by step.\nNotes: {think}\nAnswer:"


@af.stage(ttft_ms=3000, tpot_ms=150, max_tokens=8, tier="loose", name="answer")
def answer_fresh(document: str, question: str, think: str) -> str:
    # The same information, worded so that no prefix is shared.
    return f"Notes: {think}\nQuestion: {question}\nContext:\n{document}\nAnswer:"


@af.agent(stages=[think, answer_shared])
async def shared(ctx: af.Context, document: str, question: str) -> str:
    return await ctx.run(
        answer_shared, document, question, await ctx.run(think, document, question)
    )


@af.agent(stages=[think, answer_fresh])
async def fresh(ctx: af.Context, document: str, question: str) -> str:
    return await ctx.run(answer_fresh, document, question, await ctx.run(think, document, question))


async def measure(runs: int) -> dict[str, list[float]]:
    config = VLLMEngineConfig(model=resolve_model(None))
    ttft_ms: dict[str, list[float]] = {"shared_prefix": [], "no_shared_prefix": []}
    async with VLLMEngine(config) as engine:
        runtime = af.Runtime(engine, ignore_eos=True)
        for index in range(runs):
            for name, agent in (("shared_prefix", shared), ("no_shared_prefix", fresh)):
                # A distinct document per run, so only the within-program prefix can hit.
                inputs = {"document": f"Run {index} {name}.\n{DOCUMENT}", "question": "Why chunk?"}
                result = await runtime.run_one(agent, inputs)
                ttft_ms[name].append(result.stages[1].ttft_ms or 0.0)
    return ttft_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    ttft_ms = anyio.run(measure, args.runs)
    medians = {name: statistics.median(values) for name, values in ttft_ms.items()}
    ratio = medians["no_shared_prefix"] / medians["shared_prefix"]
    print(
        f"answer-stage TTFT, median of {args.runs} runs (prompt ≈ {len(DOCUMENT.split())} words):"
    )
    for name, value in medians.items():
        print(f"  {name:18} {value:7.1f} ms")
    print(f"  no-shared / shared: {ratio:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    payload = {"answer_ttft_ms": ttft_ms, "median_ms": medians, "ratio_fresh_over_shared": ratio}
    (RESULTS / "reasoning_split.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()

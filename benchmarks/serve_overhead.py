"""What `agentflow serve`'s HTTP layer adds to TTFT and TPOT, on the real vLLM CPU engine.

One engine (SmolLM2-135M, our scheduler) serves the same streaming completions two ways,
alternating request by request so the machine's drift hits both alike:
- in process: `CompletionService.stream_events`, the code path the server runs, timed where
  it yields (the baseline);
- over HTTP: the server on a loopback socket, an httpx client reading the server-sent events.

TTFT is the time from submitting to the first event carrying text; TPOT the mean time between
text events after it. Requests run one at a time, so the engine adds no queueing and the
difference is the HTTP layer (request parsing, SSE framing, the socket, the client).

Rerun: `.venv/bin/python benchmarks/serve_overhead.py [--requests 40] [--model DIR]`
Writes benchmarks/results/serve_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np

from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.metrics.prometheus import ServingMetrics
from agentflow.models import resolve_model
from agentflow.runtime import Runtime
from agentflow.serving import CompletionService, ServeDefaults, create_app
from agentflow.serving.schema import CompletionRequest
from tools.serving import running_app

RESULTS = Path(__file__).parent / "results"
PROMPT = (
    "Summarize the following note in two sentences. The river rose overnight after three days"
    " of rain; the town council closed the lower bridge, opened the school gym as a shelter and"
    " asked residents near the bank to move their cars to higher ground before noon. Note {i}:"
)


def _body(index: int, max_tokens: int) -> dict[str, Any]:
    # A loose SLO: every request is admitted, so both paths run the same engine work.
    return {
        "prompt": PROMPT.format(i=index),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "ttft_ms": 10_000,
        "tpot_ms": 1_000,
    }


async def _timed(events: AsyncIterator[str]) -> list[float]:
    """Arrival times of the events that carry text (SSE `data:` lines with a choice's text)."""
    times = []
    async for chunk in events:
        for line in chunk.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line.removeprefix("data: ")).get("choices") or []
            if choices and choices[0].get("text"):
                times.append(time.perf_counter())
    return times


async def _in_process(
    service: CompletionService, body: dict[str, Any]
) -> tuple[float, list[float]]:
    started = time.perf_counter()
    prepared = service.prepare(CompletionRequest.model_validate(body))
    return started, await _timed(service.stream_events(prepared))


async def _over_http(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    async with client.stream("POST", "/v1/completions", json=body) as reply:
        reply.raise_for_status()
        return started, await _timed(reply.aiter_text())


def _summary(runs: list[tuple[float, list[float]]]) -> dict[str, float]:
    ttft = [(times[0] - start) * 1e3 for start, times in runs if times]
    gaps = [(times[-1] - times[0]) * 1e3 / (len(times) - 1) for _, times in runs if len(times) >= 2]
    return {
        "requests": len(ttft),
        "ttft_p50_ms": float(np.percentile(ttft, 50)),
        "ttft_p99_ms": float(np.percentile(ttft, 99)),
        "tpot_mean_ms": float(np.mean(gaps)),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    config = VLLMEngineConfig(model=resolve_model(args.model))
    async with VLLMEngine(config) as engine:
        service = CompletionService(
            engine,
            model_name=config.model.name,
            defaults=ServeDefaults(),
            metrics=ServingMetrics(),
            max_model_len=config.max_model_len,
        )
        app = create_app(service, Runtime(engine))
        runs: dict[str, list[tuple[float, list[float]]]] = {"in_process": [], "http": []}
        async with running_app(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
            for index in range(2):  # warm-up: first requests pay one-time costs on both paths
                await _in_process(service, _body(-1 - 2 * index, 4))
                await _over_http(client, _body(-2 - 2 * index, 4))
            for index in range(args.requests):
                first, second = ("in_process", "http") if index % 2 == 0 else ("http", "in_process")
                for offset, path in enumerate((first, second)):
                    # Distinct prompts (a shared prefix, cached for both paths alike).
                    body = _body(2 * index + offset, args.max_tokens)
                    run = (
                        await _in_process(service, body)
                        if path == "in_process"
                        else await _over_http(client, body)
                    )
                    runs[path].append(run)
    return {path: _summary(rows) for path, rows in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per path")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    result = anyio.run(measure, args)
    base, http = result["in_process"], result["http"]
    header = f"{'':12}{'TTFT p50':>10}{'TTFT p99':>10}{'TPOT mean':>11}"
    print(f"{header}  (ms, {base['requests']} requests per path)")
    for name, row in (("in process", base), ("over HTTP", http)):
        print(
            f"{name:12}{row['ttft_p50_ms']:10.1f}{row['ttft_p99_ms']:10.1f}"
            f"{row['tpot_mean_ms']:11.2f}"
        )
    ratio = http["ttft_p50_ms"] / base["ttft_p50_ms"]
    added = http["ttft_p50_ms"] - base["ttft_p50_ms"]
    print(f"TTFT p50 over HTTP / in process: {ratio:.2f}x ({added:+.1f} ms)")
    payload = {
        **result,
        "ttft_p50_ratio_http_vs_in_process": ratio,
        "ttft_p50_added_ms": added,
        "tpot_mean_ratio_http_vs_in_process": http["tpot_mean_ms"] / base["tpot_mean_ms"],
        "max_tokens": args.max_tokens,
        "model": resolve_model(args.model).name,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_overhead.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()

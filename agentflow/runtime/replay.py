"""Replay a trace of single-stage requests on any Engine in real time and score each one.

Benchmarks (capacity on the real engine, simulator-vs-real validation) need the same requests
sent at the same offsets to different engines and policies; this is that driver. Prompts are
synthesised to the trace's token counts, so only lengths and timing matter.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from agentflow.engine.interface import Engine, GenerationRequest
from agentflow.errors import RequestFailed
from agentflow.metrics.attainment import judge_slo

__all__ = ["ReplayOutcome", "TraceRequest", "replay", "synth_prompt"]

_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda")


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace: when it arrives, its lengths and its SLO."""

    arrival_s: float
    """Offset from the start of the trace."""
    prompt_tokens: int
    output_tokens: int
    tpot_ms: float
    ttft_ms: float | None = None
    """Absolute TTFT budget; when None, `ttft_slowdown` × the isolated prefill time."""
    ttft_slowdown: float | None = None
    slo_class: str = "default"


@dataclass(slots=True)
class ReplayOutcome:
    """What happened to one replayed request."""

    request: TraceRequest
    request_id: str
    ttft_budget_ms: float
    prompt_tokens: int
    """Tokens the engine prefills for the synthesised prompt."""
    token_times_ms: list[float] = field(default_factory=list)
    best_effort: bool = False
    finished: bool = False
    error: str | None = None

    @property
    def slo_met(self) -> bool:
        """The SLO rule of the project (best-effort and failed requests are misses)."""
        verdict = judge_slo(
            self.ttft_budget_ms,
            self.request.tpot_ms,
            self.token_times_ms,
            admitted=not self.best_effort,
        )
        return self.finished and verdict.met


def synth_prompt(num_tokens: int, seed: int) -> str:
    """A prompt of about `num_tokens` tokens whose start differs per seed (no prefix hits)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(max(1, num_tokens)))


async def replay(
    engine: Engine, trace: Sequence[TraceRequest], *, name: str = "replay"
) -> list[ReplayOutcome]:
    """Send every request at its offset, stream it to the end, and return all outcomes.

    Every request ends finished or with its error recorded; none is dropped.
    """
    outcomes: list[ReplayOutcome] = []
    started_s = time.monotonic()

    async def one(index: int, item: TraceRequest) -> None:
        # Seeded by run name too: a second run on the same engine must not hit the prefix cache
        # with the first run's prompts.
        prompt = synth_prompt(item.prompt_tokens, seed=zlib.crc32(f"{name}:{index}".encode()))
        num_tokens = engine.count_prompt_tokens(prompt, use_chat_template=False)
        if item.ttft_ms is not None:
            ttft_ms = item.ttft_ms
        else:
            ttft_ms = (item.ttft_slowdown or 1.0) * engine.isolated_prefill_ms(num_tokens)
        outcome = ReplayOutcome(item, f"{name}-{index}", ttft_ms, num_tokens)
        outcomes.append(outcome)
        await anyio.sleep(max(0.0, started_s + item.arrival_s - time.monotonic()))
        request = GenerationRequest(
            request_id=outcome.request_id,
            prompt=prompt,
            max_tokens=item.output_tokens,
            ttft_ms=ttft_ms,
            tpot_ms=item.tpot_ms,
            program_id=outcome.request_id,
            stage=item.slo_class,
            tier=item.slo_class,
            ignore_eos=True,
            use_chat_template=False,
        )
        submitted_s = time.monotonic()
        try:
            async for delta in engine.stream(request):
                now_ms = (time.monotonic() - submitted_s) * 1e3
                outcome.token_times_ms.extend([now_ms] * delta.num_tokens)
                if delta.lane is not None:
                    outcome.best_effort = delta.lane == "best_effort"
                outcome.finished = outcome.finished or delta.finished
        except RequestFailed as exc:
            outcome.error = str(exc)

    async with anyio.create_task_group() as group:
        for index, item in enumerate(trace):
            group.start_soon(one, index, item)
    return sorted(outcomes, key=lambda o: o.request.arrival_s)

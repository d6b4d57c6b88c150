"""Streaming one engine request while measuring it: token times, lane, finish, SLO verdict."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager

from agentflow.engine.interface import Engine, GenerationRequest, TokenDelta
from agentflow.errors import EngineError
from agentflow.metrics.attainment import judge_slo
from agentflow.runtime.events import (
    EventSink,
    ProgramEvent,
    StageDelta,
    StageFinished,
    StageStarted,
)
from agentflow.runtime.records import StageRecord

__all__ = ["finalize_record", "measured_stream"]


async def measured_stream(
    engine: Engine,
    request: GenerationRequest,
    record: StageRecord,
    *,
    now_s: Callable[[], float],
    submitted_s: float,
    on_event: EventSink | None = None,
) -> AsyncGenerator[TokenDelta]:
    """Yield `request`'s output deltas, recording them into `record` as they come.

    Token times are taken on `now_s` (the engine's clock) relative to `submitted_s`. However
    the stream ends (finished, failed, or the consumer stopped early), `record` is finalized:
    it has a terminal status and an SLO verdict. `on_event` sees `StageStarted`, a
    `StageDelta` per delta with output, and `StageFinished` with the final record.

    Raises:
        EngineError: the engine failed the request (`RequestFailed`) or stopped serving; the
            record says so too.
    """
    emit = on_event or _ignore
    emit(
        StageStarted(
            program_id=record.program_id,
            stage=record.stage,
            iteration=record.iteration,
            request_id=record.request_id,
            tier=record.tier,
            ttft_budget_ms=record.ttft_budget_ms,
            tpot_budget_ms=record.tpot_budget_ms,
            prompt_tokens=record.prompt_tokens,
        )
    )
    deltas = engine.stream(request)
    try:
        # Closed on exit: when our consumer stops early, the engine's stream is closed now (which
        # aborts the request), not whenever the garbage collector gets to it.
        async with _closing(deltas):
            async for delta in deltas:
                now_ms = (now_s() - submitted_s) * 1e3
                record.token_times_ms.extend([now_ms] * delta.num_tokens)
                if delta.lane is not None:
                    record.lane = delta.lane
                    record.best_effort = delta.lane == "best_effort"
                if delta.finished:
                    record.finish_reason = delta.finish_reason
                if delta.text or delta.num_tokens:
                    emit(
                        StageDelta(
                            record.program_id,
                            record.stage,
                            record.request_id,
                            delta.text,
                            delta.num_tokens,
                        )
                    )
                yield delta
    except EngineError as exc:  # RequestFailed, or the engine itself stopped
        record.status, record.error = "failed", str(exc) or type(exc).__name__
        raise
    finally:
        finalize_record(record)
        emit(StageFinished(record))


def _ignore(event: ProgramEvent) -> None:
    del event


@asynccontextmanager
async def _closing(deltas: AsyncIterator[TokenDelta]) -> AsyncIterator[AsyncIterator[TokenDelta]]:
    """Close an engine's stream on exit, if it can be closed (async generators can)."""
    try:
        yield deltas
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()


def finalize_record(record: StageRecord) -> None:
    """Fill the measured latencies and the SLO verdict from the token times."""
    times = record.token_times_ms
    record.output_tokens = len(times)
    if record.status == "running":
        record.status = "finished" if record.finish_reason is not None else "failed"
        if record.status == "failed" and record.error is None:
            record.error = "stream ended without a finished output (cancelled)"
    if times:
        record.ttft_ms = times[0]
    if len(times) >= 2:
        record.tpot_ms = (times[-1] - times[0]) / (len(times) - 1)
    verdict = judge_slo(
        record.ttft_budget_ms, record.tpot_budget_ms, times, admitted=not record.best_effort
    )
    record.ttft_met, record.tpot_met = verdict.ttft_met, verdict.tpot_met
    record.slo_met = verdict.met and record.status == "finished"

"""One OpenAI completion request turned into an SLO-tagged engine request, served and measured."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentflow.engine.chat import role_lines
from agentflow.engine.interface import Engine, GenerationRequest
from agentflow.errors import EngineError
from agentflow.metrics.prometheus import ServingMetrics
from agentflow.program.slo import SLO, parse_budget
from agentflow.runtime.events import EventSink, ProgramEvent
from agentflow.runtime.measure import measured_stream
from agentflow.runtime.records import StageRecord
from agentflow.serving.errors import BadRequest
from agentflow.serving.schema import ChatCompletionRequest, CompletionRequest

__all__ = ["CompletionService", "ServeDefaults"]

OpenAIRequest = CompletionRequest | ChatCompletionRequest


class ServeDefaults(BaseModel):
    """What a request that names no SLO or length gets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft: float | str = "10x"
    """TTFT budget: milliseconds, or a slowdown of the prompt's isolated prefill ("10x")."""
    tpot: float | str = 200.0
    """TPOT budget: milliseconds, or a slowdown of a lone decode step ("8x")."""
    max_tokens: int = Field(default=256, ge=1)

    @model_validator(mode="after")
    def _budgets_are_valid(self) -> ServeDefaults:
        ttft_ms, ttft_slowdown = parse_budget(self.ttft, field="ttft")
        tpot_ms, tpot_slowdown = parse_budget(self.tpot, field="tpot")
        SLO(  # positive, finite, slowdowns of at least 1x: as a request's own budgets
            ttft_ms=ttft_ms,
            ttft_slowdown=ttft_slowdown,
            tpot_ms=tpot_ms,
            tpot_slowdown=tpot_slowdown,
        )
        return self


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated request, ready for the engine."""

    request: GenerationRequest
    record: StageRecord
    chat: bool
    include_usage: bool


class CompletionService:
    """Serves OpenAI completion and chat-completion requests on one engine under SLOs.

    Every request that passes validation reaches a terminal state the caller sees: a response
    (whose `agentflow` field says whether it was served in the admitted or the best-effort lane
    and whether it met its SLO), or an error. Every one is counted in `metrics`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        model_name: str,
        defaults: ServeDefaults,
        metrics: ServingMetrics,
        max_model_len: int | None = None,
        observers: Sequence[EventSink] = (),
    ) -> None:
        self.engine = engine
        self.observers = tuple(observers)
        """See each request as a one-stage run (no program events): tracing."""
        self.model_name = model_name
        self.defaults = defaults
        self.metrics = metrics
        self.max_model_len = max_model_len
        self._now_s: Callable[[], float] = getattr(engine, "now_s", time.monotonic)
        self._started_s = self._now_s()
        self._ids = itertools.count()

    def prepare(self, body: OpenAIRequest) -> _Prepared:
        """Check `body` against the served model and build its engine request.

        Raises:
            BadRequest: a wrong model name, a prompt too long for the model, a bad SLO.
        """
        if body.model is not None and body.model != self.model_name:
            raise BadRequest(
                f"model '{body.model}' is not served here; this server serves '{self.model_name}'",
                param="model",
                code="model_not_found",
                status=404,
            )
        chat = isinstance(body, ChatCompletionRequest)
        prompt = self._render(body)
        prompt_tokens = self.engine.count_prompt_tokens(prompt, use_chat_template=False)
        max_tokens = body.max_completion_tokens or body.max_tokens or self.defaults.max_tokens
        if self.max_model_len is not None and prompt_tokens + max_tokens > self.max_model_len:
            raise BadRequest(
                f"the prompt is {prompt_tokens} tokens; with max_tokens={max_tokens} that exceeds"
                f" the model's context of {self.max_model_len} tokens",
                param="max_tokens" if prompt_tokens < self.max_model_len else _prompt_field(body),
            )
        slo = self._slo(body)
        ttft_ms = slo.resolve_ttft_ms(self.engine.isolated_prefill_ms(prompt_tokens))
        tpot_ms = slo.resolve_tpot_ms(self.engine.lone_decode_ms(prompt_tokens + max_tokens))
        request_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        stage = body.stage or ("chat" if chat else "completion")
        tier = body.tier or "default"
        request = GenerationRequest(
            request_id=request_id,
            prompt=prompt,
            max_tokens=max_tokens,
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            program_id=f"openai-{next(self._ids)}",
            stage=stage,
            tier=tier,
            temperature=body.temperature,
            use_chat_template=False,
            stop=body.stop_strings,
            top_p=body.top_p,
            seed=body.seed,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
        )
        record = StageRecord(
            program_id=request.program_id,
            stage=stage,
            iteration=0,
            tier=tier,
            request_id=request_id,
            ttft_budget_ms=ttft_ms,
            tpot_budget_ms=tpot_ms,
            prompt_tokens=prompt_tokens,
            submitted_ms=(self._now_s() - self._started_s) * 1e3,
        )
        return _Prepared(request, record, chat, body.include_usage)

    async def respond(self, prepared: _Prepared) -> dict[str, Any]:
        """Serve a non-streaming request to its end; the OpenAI response object.

        Raises:
            EngineError: the engine failed the request (counted as failed).
        """
        pieces: list[str] = []
        try:
            async with aclosing(self._stream(prepared)) as deltas:
                async for text, _ in deltas:
                    pieces.append(text)
        finally:
            self.metrics.observe_stage(prepared.record)
        record, text = prepared.record, "".join(pieces)
        choice: dict[str, Any] = {"index": 0, "finish_reason": record.finish_reason}
        if prepared.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice |= {"text": text, "logprobs": None}
        return {
            **self._envelope(prepared, "chat.completion" if prepared.chat else "text_completion"),
            "choices": [choice],
            "usage": _usage(record),
            "agentflow": _report(record),
        }

    async def stream_events(self, prepared: _Prepared) -> AsyncIterator[str]:
        """Serve a streaming request as server-sent events, ending with `data: [DONE]`.

        A failure mid-stream becomes an error event (the status line is already sent).
        """
        kind = "chat.completion.chunk" if prepared.chat else "text_completion"
        envelope = self._envelope(prepared, kind)
        first = True
        try:
            async with aclosing(self._stream(prepared)) as deltas:
                async for text, finish_reason in deltas:
                    if not text and finish_reason is None:
                        continue
                    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason}
                    if prepared.chat:
                        role = {"role": "assistant"} if first else {}
                        choice["delta"] = {**role, "content": text}
                    else:
                        choice |= {"text": text, "logprobs": None}
                    first = False
                    yield _event({**envelope, "choices": [choice]})
            # The record is complete once the stream is: its verdict goes in a last chunk.
            last: dict[str, Any] = {
                **envelope,
                "choices": [],
                "agentflow": _report(prepared.record),
            }
            if prepared.include_usage:
                last["usage"] = _usage(prepared.record)
            yield _event(last)
        except EngineError as exc:
            yield _event({"error": {"message": str(exc), "type": "engine_error", "code": None}})
        finally:
            self.metrics.observe_stage(prepared.record)
        yield "data: [DONE]\n\n"

    async def _stream(self, prepared: _Prepared) -> AsyncGenerator[tuple[str, str | None]]:
        with self.metrics.tracking():
            async with aclosing(
                measured_stream(
                    self.engine,
                    prepared.request,
                    prepared.record,
                    now_s=self._now_s,
                    submitted_s=self._started_s + prepared.record.submitted_ms / 1e3,
                    on_event=self._emit if self.observers else None,
                )
            ) as deltas:
                async for delta in deltas:
                    yield delta.text, delta.finish_reason if delta.finished else None

    def _emit(self, event: ProgramEvent) -> None:
        for observer in self.observers:
            observer(event)

    def _render(self, body: OpenAIRequest) -> str:
        if isinstance(body, CompletionRequest):
            return body.prompt
        try:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        except ValueError as exc:
            raise BadRequest(str(exc), param="messages") from exc
        # The vLLM engine and the pool apply the model's chat template; other engines (the
        # simulator, fakes) have none.
        render = getattr(self.engine, "render_messages", role_lines)
        return str(render(messages))

    def _slo(self, body: OpenAIRequest) -> SLO:
        ttft_ms, ttft_slowdown = _budget(body.ttft_ms, body.ttft, self.defaults.ttft, "ttft")
        tpot_ms, tpot_slowdown = _budget(body.tpot_ms, body.tpot, self.defaults.tpot, "tpot")
        try:
            return SLO(
                ttft_ms=ttft_ms,
                ttft_slowdown=ttft_slowdown,
                tpot_ms=tpot_ms,
                tpot_slowdown=tpot_slowdown,
            )
        except ValidationError as exc:
            where = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "ttft"
            raise BadRequest(f"SLO: {exc}", param=where.removesuffix("_slowdown")) from exc

    def _envelope(self, prepared: _Prepared, kind: str) -> dict[str, Any]:
        return {
            "id": prepared.request.request_id,
            "object": kind,
            "created": int(time.time()),
            "model": self.model_name,
        }


def _prompt_field(body: OpenAIRequest) -> str:
    return "messages" if isinstance(body, ChatCompletionRequest) else "prompt"


def _budget(
    in_ms: float | None, declared: str | None, default: float | str, field: str
) -> tuple[float | None, float | None]:
    """(ms, slowdown) of one budget: the request's milliseconds, its "Nx", or the default."""
    if in_ms is not None:
        return in_ms, None
    return parse_budget(declared if declared is not None else default, field=field)


def _usage(record: StageRecord) -> dict[str, int]:
    return {
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.output_tokens,
        "total_tokens": record.prompt_tokens + record.output_tokens,
    }


def _report(record: StageRecord) -> dict[str, Any]:
    """The `agentflow` field of a response: the lane, the budgets and what was measured."""
    return {
        "lane": record.lane,
        "stage": record.stage,
        "tier": record.tier,
        "ttft_budget_ms": record.ttft_budget_ms,
        "tpot_budget_ms": record.tpot_budget_ms,
        "ttft_ms": record.ttft_ms,
        "tpot_ms": record.tpot_ms,
        "slo_met": record.slo_met,
    }


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"

"""Fakes for unit tests. Integration tests use the real vLLM engine instead."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from agentflow.engine.interface import GenerationRequest, TokenDelta
from agentflow.errors import RequestFailed


class FakeEngine:
    """Echoes a fixed number of words per request, with configurable per-token delay."""

    name = "fake"

    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        fail_stages: frozenset[str] = frozenset(),
        replies: dict[str, list[str]] | None = None,
        lane: str | None = None,
    ) -> None:
        self.token_delay_s = token_delay_s
        self.fail_stages = fail_stages
        self.replies = {stage: list(texts) for stage, texts in (replies or {}).items()}
        """stage -> texts to answer with, one per call (then the default echo)."""
        self.requests: list[GenerationRequest] = []
        self.lane = lane
        """The lane every delta reports (None: an engine without admission control)."""
        self.aborted: list[str] = []
        """Ids of requests whose stream was closed before it finished."""
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        self.requests.append(request)
        if request.stage in self.fail_stages:
            raise RequestFailed("injected failure", request_id=request.request_id)
        if self.replies.get(request.stage):
            text = self.replies[request.stage].pop(0)
            await anyio.sleep(self.token_delay_s)
            yield TokenDelta(text, len(text.split()), finished=True, finish_reason="stop")
            return
        done = False
        try:
            for index in range(request.max_tokens):
                await anyio.sleep(self.token_delay_s)
                last = index == request.max_tokens - 1
                done = last
                yield TokenDelta(
                    text=f"<{request.stage}{index}>",
                    num_tokens=1,
                    finished=last,
                    finish_reason="length" if last else None,
                    lane=self.lane,
                )
        finally:
            if not done:  # the consumer went away: a real engine aborts the request here
                self.aborted.append(request.request_id)

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        return len(prompt.split())

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        return 10.0 + num_tokens

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        return 5.0 + num_context_tokens / 100

    async def shutdown(self) -> None:
        self.stopped = True

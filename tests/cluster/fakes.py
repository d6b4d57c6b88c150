"""A fake engine with seats: what the pool tests run on inside Ray actors.

`SeatedEngine` serves at most `num_seats` requests at once, one token every `token_delay_s`.
A request that finds a free seat on arrival, with a TTFT budget of at least one token delay,
is admitted; the others are served best-effort, in arrival order, when a seat frees. Its
planner view (`seated_view`) tells the router the same thing: one token delay per step,
`num_seats` sequences. Output text names the serving process, so tests
can see which replica served what.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import partial

import anyio

from agentflow.cluster import FactorySpec, PlannerView
from agentflow.engine.interface import GenerationRequest, TokenDelta
from agentflow.errors import RequestFailed
from agentflow.planner import AffinePiece, PlannerConfig, StepTimePredictor


class SeatedEngine:
    name = "seated"

    def __init__(self, *, num_seats: int = 2, token_delay_s: float = 0.02) -> None:
        self.num_seats = num_seats
        self.token_delay_s = token_delay_s
        self._free = num_seats
        self._queue: list[anyio.Event] = []
        self.num_aborted = 0

    async def start(self) -> None:
        await anyio.sleep(0)

    async def _take_seat(self, request: GenerationRequest) -> str:
        if self._free > 0 and not self._queue:
            self._free -= 1
            is_on_time = request.ttft_ms >= self.token_delay_s * 1e3
            return "admitted" if is_on_time else "best_effort"
        ready = anyio.Event()
        self._queue.append(ready)
        try:
            await ready.wait()
        except BaseException:
            if ready in self._queue:
                self._queue.remove(ready)
            elif ready.is_set():  # handed a seat while being cancelled: give it back
                self._leave()
            raise
        return "best_effort"

    def _leave(self) -> None:
        if self._queue:
            self._queue.pop(0).set()  # the seat passes straight to the next waiter
        else:
            self._free += 1

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        if request.stage == "explode":
            raise RequestFailed("injected failure", request_id=request.request_id)
        lane = await self._take_seat(request)
        finished = False
        try:
            for index in range(request.max_tokens):
                await anyio.sleep(self.token_delay_s)
                finished = index == request.max_tokens - 1
                yield TokenDelta(
                    text=f"<{os.getpid()}:{index}>",
                    num_tokens=1,
                    finished=finished,
                    finish_reason="length" if finished else None,
                    lane=lane,
                )
        finally:
            if not finished:
                self.num_aborted += 1
            self._leave()

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        return max(1, len(prompt.split()))

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        return self.token_delay_s * 1e3

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        return self.token_delay_s * 1e3

    async def shutdown(self) -> None:
        await anyio.sleep(0)


def seated_view(num_seats: int, token_delay_s: float = 0.02) -> PlannerView:
    """The router's model of a SeatedEngine: one token delay per step, `num_seats` sequences."""
    # A (fictitious) 0.1 ms per prompt token: the planner sizes idle steps by the time of a
    # full token budget, and with ~free tokens it would see steps made only of overhead.
    predictor = StepTimePredictor([AffinePiece(token_delay_s, 1e-4, 1e-6, 0.0, 0.0)])
    config = PlannerConfig(
        kv_blocks_total=100_000, max_num_batched_tokens=8192, max_num_seqs=num_seats
    )
    return PlannerView(predictor.to_json(), config)


def seated_spec(num_seats: int = 2, token_delay_s: float = 0.02) -> FactorySpec:
    return FactorySpec(
        name="seated",
        factory=partial(SeatedEngine, num_seats=num_seats, token_delay_s=token_delay_s),
        view=seated_view(num_seats, token_delay_s),
    )

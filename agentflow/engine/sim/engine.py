"""`SimEngine`: the `Engine` protocol on a simulated engine, so programs run on it unchanged.

There is no background task: the engine advances inside the `stream()` calls of its clients.
Whichever stream finds no tokens for itself and no driver becomes the driver for one step
(start steps, sleep on the clock until the next step ends, hand tokens out, wake the streams
that got some), then returns to its own tokens. So the engine runs exactly while someone waits
for it, needs no task group, and shuts down with nothing left running. See `clock.py` for how
simulated time relates to the runtime's wall-clock measurements.

Prompts are counted in whitespace-separated words (one word = one token; the template adds
nothing), and every output token is the word "tok", so a later stage that quotes an earlier
stage's output sees exactly its token count. Output length is the request's `max_tokens`
unless an `output_tokens` function decides (workloads pass the trace's oracle lengths).

Prefix caching: a request's parent is the previous request of the same program, and the two
share their prompts' common leading words; with the chat template on, at most the parent's
prompt less the template's tail (`CHAT_TEMPLATE_TAIL_TOKENS`), as the real template renders
them. The instance reuses the parent's KV for that prefix if it still holds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio

from agentflow.engine.interface import GenerationRequest, TokenDelta
from agentflow.engine.sim.clock import PacedClock, SimClock
from agentflow.engine.sim.deployment import Deployment, Progress
from agentflow.engine.sim.policies import PolicyOptions, make_deployment
from agentflow.engine.sim.profiles import SimProfile
from agentflow.engine.sim.request import (
    CHAT_TEMPLATE_TAIL_TOKENS,
    FinishReason,
    RequestOutcome,
    RequestSpec,
    SimRequest,
)
from agentflow.errors import EngineError, RequestFailed

__all__ = ["SimEngine", "SimEngineConfig"]

OUTPUT_WORD = "tok"
_MAX_PROGRAMS = 1 << 14
"""Programs whose last request is remembered as the parent of their next one."""


@dataclass(frozen=True, slots=True)
class SimEngineConfig:
    """How a `SimEngine` is built."""

    policy: str = "agentflow"
    options: PolicyOptions = field(default_factory=PolicyOptions)
    output_tokens: Callable[[GenerationRequest], int] | None = None
    """Output length of a request (default: its `max_tokens`)."""


class _Stream:
    """Per-request hand-over between the driver and the consuming task."""

    __slots__ = ("event", "num_delivered", "request")

    def __init__(self, request: SimRequest) -> None:
        self.request = request
        self.num_delivered = 0
        self.event = anyio.Event()

    def wake(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = anyio.Event()


class SimEngine:
    """A simulated vLLM-like engine implementing `agentflow.engine.Engine`.

    Args:
        profile: hardware/model profile (`get_profile(...)`).
        config: policy, policy options and output-length model.
        clock: `PacedClock()` (default: wall-clock speed, runtime measurements exact) or
            `VirtualClock()` (as fast as possible, use `outcomes` for SLO verdicts).
    """

    name = "sim"

    def __init__(
        self,
        profile: SimProfile,
        config: SimEngineConfig | None = None,
        *,
        clock: SimClock | None = None,
    ) -> None:
        self.profile = profile
        self.config = config or SimEngineConfig()
        self.clock: SimClock = clock or PacedClock()
        self._predictor = profile.predictor()
        self._deployment: Deployment | None = None
        self._streams: dict[str, _Stream] = {}
        self._is_driving = False
        self.outcomes: list[RequestOutcome] = []
        """Every ended request, with token times on the simulated clock."""
        self._last_by_program: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()
        """program_id -> (request_id, prompt words) of its latest request."""

    async def __aenter__(self) -> SimEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def start(self) -> None:
        """Build the policy's deployment (idempotent)."""
        if self._deployment is None:
            self._deployment = make_deployment(
                self.config.policy, self.profile, self.config.options
            )

    async def shutdown(self) -> None:
        """Abort whatever is still running. Safe to call twice."""
        deployment, self._deployment = self._deployment, None
        if deployment is not None:
            for stream in list(self._streams.values()):
                deployment.abort(stream.request)
                stream.wake()

    def now_s(self) -> float:
        """The simulated clock."""
        return self.clock.now_s()

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        """Words of the prompt (the simulator's tokenizer), at least 1."""
        del use_chat_template
        return max(1, len(prompt.split()))

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        """The profile's predicted prefill time of a lone prompt."""
        return self._predictor.isolated_prefill_s(num_tokens) * 1e3

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        """The profile's predicted decode step of a lone request."""
        return self._predictor.lone_decode_s(num_context_tokens) * 1e3

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        """Submit `request`; yield its tokens as the simulated engine produces them.

        Raises:
            EngineError: the engine is not started.
            RequestFailed: the request can never fit in the KV cache, or the engine shut down.
        """
        deployment = self._require_deployment()
        now_s = self.clock.now_s()
        sim = SimRequest(self._spec_for(request, now_s), now_s)
        if not deployment.add(sim, now_s):
            self.outcomes.append(sim.outcome())
            raise RequestFailed("prompt + output exceed the KV cache", request_id=sim.request_id)
        stream = _Stream(sim)
        self._streams[sim.request_id] = stream
        try:
            while True:
                pending = sim.num_generated - stream.num_delivered
                if pending > 0 or sim.is_finished:
                    delta = self._delta(stream, pending)
                    yield delta
                    if delta.finished:
                        return
                elif not self._is_driving:
                    await self._drive()
                else:
                    await stream.wait()
        finally:
            self._close(stream)

    # -- internals -------------------------------------------------------------------------

    def _require_deployment(self) -> Deployment:
        if self._deployment is None:
            raise EngineError("sim engine is not started: await engine.start() first")
        return self._deployment

    def _spec_for(self, request: GenerationRequest, now_s: float) -> RequestSpec:
        num_output = request.max_tokens
        if self.config.output_tokens is not None:
            num_output = max(1, min(request.max_tokens, self.config.output_tokens(request)))
        words = request.prompt.split()
        parent_id, num_shared = self._parent_of(request, words)
        return RequestSpec(
            request_id=request.request_id,
            arrival_s=now_s,
            num_prompt_tokens=max(1, len(words)),
            num_output_tokens=num_output,
            ttft_s=request.ttft_ms / 1e3,
            tpot_s=request.tpot_ms / 1e3,
            program_id=request.program_id,
            stage=request.stage,
            after_id=parent_id,
            num_shared_prefix_tokens=num_shared,
        )

    def _parent_of(self, request: GenerationRequest, words: list[str]) -> tuple[str | None, int]:
        """(the program's previous request, prompt tokens shared with it); remember this one."""
        if not request.program_id:
            return None, 0
        previous = self._last_by_program.pop(request.program_id, None)
        self._last_by_program[request.program_id] = (request.request_id, words)
        if len(self._last_by_program) > _MAX_PROGRAMS:
            self._last_by_program.popitem(last=False)
        if previous is None:
            return None, 0
        parent_id, parent_words = previous
        shared = 0
        for mine, theirs in zip(words, parent_words, strict=False):
            if mine != theirs:
                break
            shared += 1
        if request.use_chat_template:
            shared = min(shared, len(parent_words) - CHAT_TEMPLATE_TAIL_TOKENS)
        return parent_id, max(0, shared)

    def _delta(self, stream: _Stream, pending: int) -> TokenDelta:
        sim = stream.request
        stream.num_delivered += pending
        if sim.finish_reason is FinishReason.ABORTED and self._deployment is None:
            raise RequestFailed("the engine shut down", request_id=sim.request_id)
        finished = sim.is_finished and stream.num_delivered >= sim.num_generated
        lane = sim.lane.value if sim.lane is not None else None
        return TokenDelta(
            text=" ".join([OUTPUT_WORD] * pending) + (" " if pending else ""),
            num_tokens=pending,
            finished=finished,
            finish_reason=str(sim.finish_reason) if finished else None,
            lane=lane,
        )

    def _close(self, stream: _Stream) -> None:
        sim = stream.request
        self._streams.pop(sim.request_id, None)
        if not sim.is_finished and self._deployment is not None:
            self._deployment.abort(sim)  # the consumer went away: cancel in the engine
        if sim.finish_reason is FinishReason.ABORTED:
            self.outcomes.append(sim.outcome())
        self._hand_off()

    async def _drive(self) -> None:
        """Run the engine up to its next event (one step end, wake-up or hand-off)."""
        deployment = self._require_deployment()
        self._is_driving = True
        try:
            clock = self.clock
            self._deliver(deployment.advance(clock.now_s()))
            await clock.settle()  # clients react to tokens (follow-up requests) first
            deployment.begin_steps(clock.now_s())
            next_s = deployment.next_event_s()
            if next_s is None:
                return
            await clock.sleep_until(next_s)
            self._deliver(deployment.advance(clock.now_s()))
        finally:
            self._is_driving = False
            self._hand_off()

    def _deliver(self, progress: Progress) -> None:
        for sim in progress.emitted:
            stream = self._streams.get(sim.request_id)
            if stream is not None:
                stream.wake()
        for sim in progress.finished:
            self.outcomes.append(sim.outcome())

    def _hand_off(self) -> None:
        """Wake one waiting stream so that someone drives the engine next."""
        for stream in self._streams.values():
            if not stream.request.is_finished:
                stream.wake()
                return

"""The Engine seam: what the runtime needs from any LLM backend (vLLM, the simulator, fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Engine", "GenerationRequest", "ProgramAwareEngine", "TokenDelta"]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One LLM call of one stage of one program instance, tagged with its SLO."""

    request_id: str
    prompt: str
    max_tokens: int
    ttft_ms: float
    """Resolved TTFT budget (a slowdown is already turned into milliseconds)."""
    tpot_ms: float
    program_id: str
    stage: str
    tier: str
    """The stage's SLO class label (e.g. 'tight', 'loose'), carried to the scheduler."""
    temperature: float = 0.0
    ignore_eos: bool = False
    """Generate exactly `max_tokens` (benchmarks and random-weight test models)."""
    use_chat_template: bool = True
    """Wrap the prompt as one user turn when the model has a chat template."""
    stop: tuple[str, ...] = ()
    """Strings that end the output (not included in it); engines without text ignore them."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the smallest token set with this much probability."""
    seed: int | None = None
    """Sampling seed, for reproducible output at a temperature above 0."""
    presence_penalty: float = 0.0
    """OpenAI's presence penalty: lowers the logit of every token already in the output."""
    frequency_penalty: float = 0.0
    """OpenAI's frequency penalty: lowers a token's logit by how often it is in the output."""

    @classmethod
    def unconstrained(
        cls, request_id: str, prompt: str, max_tokens: int, *, label: str
    ) -> GenerationRequest:
        """A raw-text request with effectively no SLO that generates exactly `max_tokens`.

        For warm-up and profiling traffic, which must be neither judged nor prioritised.
        """
        return cls(
            request_id=request_id,
            prompt=prompt,
            max_tokens=max_tokens,
            ttft_ms=60_000.0,
            tpot_ms=60_000.0,
            program_id=label,
            stage=label,
            tier=label,
            ignore_eos=True,
            use_chat_template=False,
        )

    def extra_args(self) -> dict[str, Any]:
        """The SLO metadata that travels to the engine's scheduler (vLLM `extra_args`)."""
        return {
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "program_id": self.program_id,
            "stage": self.stage,
            "tier": self.tier,
        }


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """New output since the previous delta. One delta may carry several tokens."""

    text: str
    num_tokens: int
    finished: bool
    finish_reason: str | None = None
    lane: str | None = None
    """'admitted' (served under an SLO guarantee) or 'best_effort'; None if the engine has no
    admission control."""


@runtime_checkable
class Engine(Protocol):
    """An LLM backend that serves SLO-tagged requests and streams tokens.

    Contract: `start()` is awaited once before any `stream()`; `stream()` may be called from many
    tasks at once; every stream ends with a delta whose `finished` is True, or raises
    `RequestFailed`; cancelling the consuming task aborts the request in the engine.
    `shutdown()` is idempotent and leaves no engine process behind.
    """

    name: str

    async def start(self) -> None:
        """Load the model and start serving."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        """Submit `request` and yield its output as it is produced."""
        ...

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        """Number of prompt tokens the engine will prefill for `prompt`."""
        ...

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        """Predicted prefill time of one `num_tokens` prompt on an idle engine."""
        ...

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        """Predicted decode step of one request alone, attending to `num_context_tokens`."""
        ...

    async def shutdown(self) -> None:
        """Stop serving and release every process and resource."""
        ...


@runtime_checkable
class ProgramAwareEngine(Protocol):
    """An engine that wants to know when a program instance is over (a replica pool).

    The runtime calls `end_program` once per program it ran on the engine, after the program's
    last request ended (finished, failed or cancelled). A program is otherwise invisible
    between its stages: it holds no request while a tool runs, yet it is coming back.
    """

    def end_program(self, program_id: str) -> None:
        """`program_id` will send no more requests."""
        ...

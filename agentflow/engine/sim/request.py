"""Requests in the simulator: the spec that goes in, the live state, and the outcome out."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agentflow.metrics.attainment import SLOVerdict, judge_slo

__all__ = [
    "CHAT_TEMPLATE_TAIL_TOKENS",
    "FinishReason",
    "Lane",
    "RequestOutcome",
    "RequestSpec",
    "SimRequest",
]

CHAT_TEMPLATE_TAIL_TOKENS = 5
"""Tokens a chat template puts after the user's text (SmolLM2: `<|im_end|>`, newline,
`<|im_start|>`, `assistant`, newline). When a follow-up's prompt text extends its parent's,
the rendered prompts share the parent's prompt up to this tail, not the parent's output."""


class Lane(enum.StrEnum):
    """How a request was served, fixed when its first token is produced."""

    ADMITTED = "admitted"
    """Served under an SLO guarantee (every request of a policy without admission control)."""
    BEST_EFFORT = "best_effort"
    """Served from leftover budget only; counts as an SLO miss."""


class FinishReason(enum.StrEnum):
    """How a request ended. Every request of a simulation ends with exactly one of these."""

    LENGTH = "length"
    """All output tokens were produced."""
    TIMEOUT = "timeout"
    """The simulation hit its time limit first (the queue did not drain)."""
    TOO_LARGE = "too_large"
    """Its prompt plus output can never fit in the KV cache."""
    STOPPED = "stopped"
    """The simulation stopped early (capacity search: the miss budget was exceeded)."""
    ABORTED = "aborted"
    """The client cancelled it (SimEngine only)."""


TERMINAL_OK = frozenset({FinishReason.LENGTH})


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of a workload, with its SLO resolved to seconds.

    A request with `after_id` is a follow-up (next round of a tool loop, answer after thinking):
    it arrives `delay_s` after the request `after_id` finishes, and `arrival_s` is ignored.
    """

    request_id: str
    arrival_s: float
    """Arrival time on the simulation clock (seconds)."""
    num_prompt_tokens: int
    num_output_tokens: int
    """Tokens the model generates (the oracle length every policy is given, as in SLOs-Serve)."""
    ttft_s: float
    """Resolved TTFT budget in seconds from arrival."""
    tpot_s: float
    program_id: str = ""
    """Requests sharing a program id form one program instance (attainment is per program)."""
    stage: str = ""
    after_id: str | None = None
    delay_s: float = 0.0
    """Gap between the parent's last token and this request's arrival (tool time)."""
    num_shared_prefix_tokens: int = 0
    """Leading prompt tokens identical to the start of the parent's (`after_id`) sequence.

    An engine with prefix caching reuses their KV if it still holds the parent's blocks.
    """


class SimRequest:
    """Mutable state of one request inside a simulated engine (hot path: slotted, no checks).

    Token accounting follows vLLM: prefill computes the prompt's KV and samples token 1; every
    decode computes the KV of the last sampled token and samples the next. A request preempted
    by recompute drops its KV and later prefills prompt and generated tokens again.
    """

    __slots__ = (
        "arrival_s",
        "finish_reason",
        "finish_s",
        "first_token_s",
        "is_admitted",
        "lane",
        "num_blocks",
        "num_cached_tokens",
        "num_computed",
        "num_generated",
        "num_output_tokens",
        "num_preemptions",
        "num_prompt_tokens",
        "program_id",
        "request_id",
        "spec",
        "stage",
        "token_times_s",
        "tpot_s",
        "ttft_s",
    )

    def __init__(self, spec: RequestSpec, arrival_s: float) -> None:
        self.spec = spec
        self.request_id = spec.request_id
        self.program_id = spec.program_id
        self.stage = spec.stage
        self.arrival_s = arrival_s
        self.num_prompt_tokens = spec.num_prompt_tokens
        self.num_output_tokens = max(1, spec.num_output_tokens)
        self.ttft_s = spec.ttft_s
        self.tpot_s = spec.tpot_s
        self.num_computed = 0
        """Tokens whose KV is in this engine's cache."""
        self.num_generated = 0
        self.num_cached_tokens = 0
        """Prompt tokens whose KV came from the prefix cache (not computed by this request)."""
        self.num_blocks = 0
        """KV blocks held on the engine that currently owns the request."""
        self.token_times_s: list[float] = []
        self.first_token_s: float | None = None
        self.finish_s: float | None = None
        self.finish_reason: FinishReason | None = None
        self.is_admitted = False
        """Admitted by the planner (agentflow policy only; others admit everything)."""
        self.lane: Lane | None = None
        self.num_preemptions = 0

    @property
    def is_decoding(self) -> bool:
        """KV holds everything but the last sampled token: the next step is a decode."""
        return self.num_generated > 0 and self.num_computed == (
            self.num_prompt_tokens + self.num_generated - 1
        )

    @property
    def num_prefill_target(self) -> int:
        """Tokens a (re)prefill must compute before it samples a token."""
        return self.num_prompt_tokens + self.num_generated

    @property
    def num_remaining_prefill(self) -> int:
        """Prefill tokens left (0 while decoding)."""
        return 0 if self.is_decoding else self.num_prefill_target - self.num_computed

    @property
    def is_finished(self) -> bool:
        """Whether the request has ended (any reason)."""
        return self.finish_reason is not None

    def emit(self, now_s: float) -> None:
        """Record one sampled token at `now_s`."""
        if self.num_generated == 0:
            self.first_token_s = now_s
            if self.lane is None:
                self.lane = Lane.ADMITTED if self.is_admitted else Lane.BEST_EFFORT
        self.num_generated += 1
        self.token_times_s.append(now_s)

    def outcome(self) -> RequestOutcome:
        """The frozen record of this request."""
        return RequestOutcome(
            request_id=self.request_id,
            program_id=self.program_id,
            stage=self.stage,
            arrival_s=self.arrival_s,
            ttft_s=self.ttft_s,
            tpot_s=self.tpot_s,
            num_prompt_tokens=self.num_prompt_tokens,
            num_output_tokens=self.num_output_tokens,
            token_times_s=tuple(self.token_times_s),
            lane=self.lane,
            finish_reason=self.finish_reason or FinishReason.TIMEOUT,
            finish_s=self.finish_s,
            num_preemptions=self.num_preemptions,
            num_cached_tokens=self.num_cached_tokens,
        )

    def __repr__(self) -> str:
        return (
            f"SimRequest({self.request_id}, computed={self.num_computed}, "
            f"generated={self.num_generated}/{self.num_output_tokens})"
        )


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What happened to one request, with per-token times on the simulation clock."""

    request_id: str
    program_id: str
    stage: str
    arrival_s: float
    ttft_s: float
    tpot_s: float
    num_prompt_tokens: int
    num_output_tokens: int
    token_times_s: tuple[float, ...]
    lane: Lane | None
    """None if it never produced a token."""
    finish_reason: FinishReason
    finish_s: float | None
    num_preemptions: int
    num_cached_tokens: int = 0
    """Prompt tokens served from the prefix cache."""

    @property
    def is_best_effort(self) -> bool:
        """Served in the best-effort lane (an SLO miss by definition)."""
        return self.lane is Lane.BEST_EFFORT

    @property
    def is_finished(self) -> bool:
        """Produced all its tokens."""
        return self.finish_reason in TERMINAL_OK

    @property
    def last_deadline_s(self) -> float:
        """When its last token was due under the SLO (absolute)."""
        return self.arrival_s + self.ttft_s + (self.num_output_tokens - 1) * self.tpot_s

    def verdict(self) -> SLOVerdict:
        """SLOs-Serve's rule (`judge_slo`); unfinished requests miss."""
        times_ms = [(t - self.arrival_s) * 1e3 for t in self.token_times_s]
        verdict = judge_slo(
            self.ttft_s * 1e3, self.tpot_s * 1e3, times_ms, admitted=not self.is_best_effort
        )
        if not self.is_finished:
            return SLOVerdict(ttft_met=verdict.ttft_met, tpot_met=False)
        return verdict

    @property
    def slo_met(self) -> bool:
        """Whether the request met both budgets and finished."""
        return self.verdict().met

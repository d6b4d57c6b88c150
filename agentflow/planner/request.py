"""One request as the planner sees it: budgets, progress and the deadlines they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentflow.errors import ConfigError
from agentflow.metrics.attainment import TOLERANCE, TPOT_CHECK_EVERY

__all__ = ["PlanRequest"]


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """A running or waiting request, in the planner's terms.

    Deadlines follow SLOs-Serve's scoring: the first token is due at `arrival_s + ttft_s`, and
    output token k (1-based) at `t0 + (k - 1) * tpot_s`, where
    `t0 = max(arrival_s + ttft_s, first_token_s)`. Decode credit therefore starts at the TTFT
    deadline even when prefill finished early.

    Raises:
        ConfigError: a budget is not a positive finite number or a token count is out of range.
    """

    request_id: str
    arrival_s: float
    """When the request arrived, on the same clock as the planner's `now_s`."""
    ttft_s: float
    """Resolved time-to-first-token budget, seconds from arrival."""
    tpot_s: float
    """Time-per-output-token budget after the first token, seconds."""
    num_prompt_tokens: int
    num_computed_tokens: int
    """Prompt tokens already prefilled (chunked-prefill progress)."""
    num_output_tokens: int
    """Output tokens generated so far."""
    max_output_tokens: int
    """Output length bound: sets the KV reservation and the end of decode."""
    first_token_s: float | None = None
    """When the first output token was produced, or None."""
    is_admitted: bool = False
    """Admitted by an earlier plan: it stays admitted and is never dropped."""
    priority_tier: str = ""
    """Free label, carried through untouched."""

    def __post_init__(self) -> None:
        # One comparison chain for the valid case (a plan builds tens of these per step);
        # the checks below name what is wrong otherwise (NaN fails every comparison).
        if (
            0.0 < self.ttft_s < math.inf
            and 0.0 < self.tpot_s < math.inf
            and -math.inf < self.arrival_s < math.inf
            and 0 <= self.num_computed_tokens <= self.num_prompt_tokens
            and self.num_output_tokens >= 0
            and self.max_output_tokens >= 1
        ):
            return
        for name in ("ttft_s", "tpot_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"request {self.request_id}: {name} must be > 0, got {value!r}")
        if not math.isfinite(self.arrival_s):
            raise ConfigError(f"request {self.request_id}: arrival_s must be finite")
        for name in ("num_prompt_tokens", "num_computed_tokens", "num_output_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"request {self.request_id}: {name} must be >= 0")
        if self.max_output_tokens < 1:
            raise ConfigError(f"request {self.request_id}: max_output_tokens must be >= 1")
        if self.num_computed_tokens > self.num_prompt_tokens:
            raise ConfigError(
                f"request {self.request_id}: num_computed_tokens "
                f"({self.num_computed_tokens}) exceeds num_prompt_tokens ({self.num_prompt_tokens})"
            )

    @property
    def prefill_deadline_s(self) -> float:
        """When the first token is due (absolute)."""
        return self.arrival_s + self.ttft_s

    @property
    def is_decoding(self) -> bool:
        """Whether the whole prompt has been prefilled."""
        return self.num_computed_tokens >= self.num_prompt_tokens

    @property
    def num_remaining_prompt_tokens(self) -> int:
        """Prompt tokens still to prefill."""
        return self.num_prompt_tokens - self.num_computed_tokens

    @property
    def decode_origin_s(self) -> float:
        """`t0`: the time output token 1 counts from (TTFT deadline or the actual first token)."""
        if self.first_token_s is None:
            return self.prefill_deadline_s
        return max(self.prefill_deadline_s, self.first_token_s)

    @property
    def num_remaining_decode_tokens(self) -> int:
        """Output tokens still to produce by decode steps (the prefill step makes token 1)."""
        return max(0, self.max_output_tokens - max(self.num_output_tokens, 1))

    @property
    def decode_end_s(self) -> float:
        """When the last output token is due (absolute)."""
        return self.decode_origin_s + (self.max_output_tokens - 1) * self.tpot_s

    @property
    def next_token_due_s(self) -> float:
        """When the next output token is due (absolute).

        Before decoding this is the prefill deadline; while decoding it is
        `t0 + num_output_tokens * tpot_s`.
        """
        if not self.is_decoding:
            return self.prefill_deadline_s
        return self.decode_origin_s + self.num_output_tokens * self.tpot_s

    def slack_s(self, now_s: float) -> float:
        """Time from `now_s` until the next output token is due (negative when behind)."""
        return self.next_token_due_s - now_s

    def num_kv_blocks(self, block_size: int) -> int:
        """KV blocks reserved for the whole request: `ceil((prompt + max_output) / block_size)`."""
        return -(-(self.num_prompt_tokens + self.max_output_tokens) // block_size)

    def num_context_tokens(self) -> int:
        """Tokens in the KV cache now (what one decode step attends to)."""
        return self.num_computed_tokens + self.num_output_tokens

    def has_missed(self, now_s: float) -> bool:
        """Whether the SLO is already lost by the project's rule (metrics.attainment), as of now.

        True once the first token is later than TTFT·1.05, or once the next checked token
        (every 20th) is overdue at t0 + (n−1)·TPOT·1.05. A lost request can never count as met
        again, so the scheduler stops spending priority on it.
        """
        ttft_due_s = self.arrival_s + self.ttft_s * (1 + TOLERANCE)
        if self.first_token_s is None:
            return now_s > ttft_due_s
        if self.first_token_s > ttft_due_s:
            return True
        checkpoint = -(-(self.num_output_tokens + 1) // TPOT_CHECK_EVERY) * TPOT_CHECK_EVERY
        if checkpoint > self.max_output_tokens:
            return False
        due_s = self.decode_origin_s + (checkpoint - 1) * self.tpot_s * (1 + TOLERANCE)
        return now_s > due_s

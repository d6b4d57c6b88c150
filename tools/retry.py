"""Retry policy for idempotent tool calls: bounded attempts, exponential backoff with jitter."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RetryPolicy"]


class RetryPolicy(BaseModel):
    """When and how soon to call an idempotent tool again after a retryable failure.

    Retryable failures are connect errors, timeouts and 5xx answers; 4xx answers and
    non-idempotent tools are never retried. Retries also stop when the call's deadline
    would pass during the backoff.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1)
    """Total attempts, the first included."""
    backoff_base_s: float = Field(default=0.05, ge=0)
    """Delay before the second attempt (before jitter); doubles after each attempt."""
    backoff_max_s: float = Field(default=1.0, ge=0)
    """Upper bound on one delay."""
    jitter: float = Field(default=0.5, ge=0, le=1)
    """Fraction of each delay drawn at random, so clients retrying together spread out."""
    attempt_timeout_s: float | None = Field(default=None, gt=0)
    """Cap on one attempt, leaving time to retry after a timeout; None gives each attempt
    all the time left before the call's deadline."""

    def backoff_s(self, num_attempts_done: int, rng: random.Random) -> float:
        """Delay before the next attempt, after `num_attempts_done` failed ones (>= 1)."""
        delay_s = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (num_attempts_done - 1))
        return delay_s * (1 - self.jitter * rng.random())

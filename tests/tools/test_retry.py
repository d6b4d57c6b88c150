"""Backoff of the retry policy, and what a ToolResult shows the model."""

import random

import pytest
from pydantic import ValidationError

from tools import RetryPolicy, ToolResult


def test_backoff_doubles_up_to_the_cap_without_jitter():
    policy = RetryPolicy(backoff_base_s=0.1, backoff_max_s=0.5, jitter=0)
    rng = random.Random(0)

    assert [policy.backoff_s(n, rng) for n in range(1, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.5, 0.5]
    )


def test_jitter_shortens_delays_by_at_most_its_fraction():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=1.0, jitter=0.5)
    rng = random.Random(1)
    delays = [policy.backoff_s(1, rng) for _ in range(200)]

    assert all(0.5 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 100  # spread out, not synchronized


def test_policy_rejects_nonsense():
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValidationError):
        RetryPolicy(jitter=1.5)


def test_observation_is_the_content_or_the_error():
    ok = ToolResult("add", True, "3", None, latency_ms=1.0, attempts=1)
    failed = ToolResult("add", False, "", "timed out", latency_ms=9.0, attempts=2)

    assert ok.observation() == "3"
    assert failed.observation() == "error: timed out"

"""Whether one request met its SLO, by the paper's rule, and attainment over many."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SLOVerdict", "attainment", "judge_slo"]

TOLERANCE = 0.05
"""Both budgets get 5 % slack, as in SLOs-Serve's evaluation."""
TPOT_CHECK_EVERY = 20
"""TPOT is checked cumulatively at every 20th token."""


@dataclass(frozen=True, slots=True)
class SLOVerdict:
    """The outcome of checking one request against its budgets."""

    ttft_met: bool
    tpot_met: bool

    @property
    def met(self) -> bool:
        """Both budgets met."""
        return self.ttft_met and self.tpot_met


def judge_slo(
    ttft_budget_ms: float,
    tpot_budget_ms: float,
    token_times_ms: Sequence[float],
    *,
    admitted: bool = True,
) -> SLOVerdict:
    """Check one request (SLOs-Serve's rule; use it everywhere so numbers compare).

    The first token must come by TTFT·1.05 after arrival, and token n (every 20th) by
    t0 + (n−1)·TPOT·1.05 with t0 = max(TTFT budget, first-token time): decode credit starts at
    the TTFT deadline even when prefill finished early. Best-effort requests (not admitted)
    count as misses, as does a request that produced no token.

    Args:
        ttft_budget_ms: the resolved TTFT budget.
        tpot_budget_ms: the TPOT budget.
        token_times_ms: arrival time of each output token, in ms since the request arrived.
        admitted: False for best-effort requests.
    """
    if not admitted or not token_times_ms:
        return SLOVerdict(ttft_met=False, tpot_met=False)
    first_ms = token_times_ms[0]
    ttft_met = first_ms <= ttft_budget_ms * (1 + TOLERANCE)
    start_ms = max(ttft_budget_ms, first_ms)
    tpot_met = all(
        token_times_ms[n - 1] <= start_ms + (n - 1) * tpot_budget_ms * (1 + TOLERANCE)
        for n in range(TPOT_CHECK_EVERY, len(token_times_ms) + 1, TPOT_CHECK_EVERY)
    )
    return SLOVerdict(ttft_met=ttft_met, tpot_met=tpot_met)


def attainment(verdicts: Iterable[bool]) -> float:
    """Share of True values (1.0 for none)."""
    values = list(verdicts)
    return sum(values) / len(values) if values else 1.0

"""SLO-adaptive speculation inside vLLM: per-request draft limits and measured acceptance.

vLLM has no per-request speculation length (reference/vllm_integration.md): its n-gram
proposer drafts up to `num_speculative_tokens` for every running request, and the scheduler
verifies whatever drafts a request holds. The planner chooses a verify length per SLO tier
(`StepPlan.spec_len_by_tier`); the scheduler mixin enforces it by trimming each request's
drafts before vLLM schedules the step (a new list, never in place: the async scheduler shares
its placeholder list).

The planner's acceptance model is geometric with one probability per draft. The meter
measures it where it matters: on every verify the planner allowed drafts for, a request that
held no draft (the n-gram found no match) counts as a first draft rejected. Otherwise a
request whose text never repeats would be planned at several tokens per step and fall behind
its TPOT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from agentflow.planner import StepPlan

__all__ = ["AcceptanceMeter", "HasDrafts", "draft_limits", "trim_drafts"]


class HasDrafts(Protocol):
    """The part of a vLLM `Request` this module reads and writes."""

    request_id: str
    spec_token_ids: list[int]


@dataclass(slots=True)
class AcceptanceMeter:
    """Running estimate of the per-draft acceptance probability (geometric model).

    A verify of k allowed drafts that accepted a of them saw a successes and, when a < k, one
    rejection; the estimate is successes / (successes + rejections), with older verifies
    decayed so it follows the text being served. It starts from `prior` worth
    `prior_weight` draft outcomes.
    """

    prior: float
    prior_weight: float = 20.0
    decay: float = 0.995
    """Weight kept per observed verify: about 200 verifies of memory."""
    successes: float = 0.0
    rejections: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"acceptance prior must be in (0, 1), got {self.prior}")
        self.successes = self.prior * self.prior_weight
        self.rejections = (1.0 - self.prior) * self.prior_weight

    @property
    def alpha(self) -> float:
        """Current estimate, kept inside (0.01, 0.99) as the planner's model requires."""
        value = self.successes / (self.successes + self.rejections)
        return min(0.99, max(0.01, value))

    def observe(self, num_allowed: int, num_accepted: int) -> None:
        """One verify: `num_allowed` drafts were allowed, `num_accepted` were accepted."""
        if num_allowed <= 0:
            return
        accepted = max(0, min(num_accepted, num_allowed))
        self.successes = self.successes * self.decay + accepted
        self.rejections = self.rejections * self.decay + (1.0 if accepted < num_allowed else 0.0)


def draft_limits(plan: StepPlan, request_ids: Iterable[str], max_drafts: int) -> dict[str, int]:
    """Drafts each request may verify this step.

    Admitted requests get their tier's verify length less the bonus token; best-effort
    requests none: a draft costs about what a prefill token does, and the lane only gets
    spare tokens. A request the plan gave no tier (it is admitted this very step) gets the
    tightest tier's length, which the planner chose for the most demanding decoder.
    """
    admitted = set(plan.admitted_ids)
    fallback = plan.spec_len_by_tier.get(0, 1)
    limits = {}
    for rid in request_ids:
        if rid not in admitted:
            limits[rid] = 0
            continue
        tier = plan.tier_by_id.get(rid)
        spec_len = fallback if tier is None else plan.spec_len_by_tier.get(tier, 1)
        limits[rid] = max(0, min(max_drafts, spec_len - 1))
    return limits


def trim_drafts(requests: Iterable[HasDrafts], limits: Mapping[str, int]) -> int:
    """Cut each request's drafts to its limit (new lists); return the drafts removed."""
    removed = 0
    for request in requests:
        limit = limits.get(request.request_id)
        drafts = request.spec_token_ids
        if limit is not None and len(drafts) > limit:
            removed += len(drafts) - limit
            request.spec_token_ids = list(drafts[:limit])
    return removed

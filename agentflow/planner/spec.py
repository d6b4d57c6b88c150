"""SLO-adaptive speculation: per-tier verify lengths by the SLOs-Serve §4 enumeration."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

from agentflow.planner.config import SpecConfig
from agentflow.planner.predictor import StepTimePredictor

__all__ = ["choose_spec_lengths", "expected_tokens", "planned_tokens", "shortest_spec_len"]


def expected_tokens(spec_len: int, alpha: float) -> float:
    """Expected tokens from one verify of length `spec_len` under geometric acceptance."""
    if alpha >= 1.0:
        return float(spec_len)
    return (1.0 - alpha**spec_len) / (1.0 - alpha)


SLO_WINDOW_TOKENS = 20
"""The SLO check looks at every 20th token (module `agentflow.metrics.attainment`)."""
CONFIDENCE_Z = 1.65
"""One-sided 95 % normal quantile."""


@cache  # pure, and the enumeration asks for the same few (length, alpha) pairs every plan
def planned_tokens(spec_len: int, alpha: float) -> float:
    """Tokens per verify the planner may count on: a low quantile of the mean over an SLO window.

    A verify yields 1..spec_len tokens (truncated geometric). The SLO is judged on every 20th
    token, so what matters is the mean yield over the ~20 / E[s] verifies of a window; planning
    with E[s] itself (SLOs-Serve uses floor(E[s])) leaves a decoder behind whenever its draws
    come in low. With alpha = 0.6 and 4 tokens, E = 2.18 but 40 % of verifies yield one token;
    this bound gives 1.54.
    """
    if spec_len <= 1:
        return 1.0
    probs = [alpha ** (k - 1) * (1 - alpha) for k in range(1, spec_len)]
    probs.append(alpha ** (spec_len - 1))
    mean = sum(k * p for k, p in enumerate(probs, start=1))
    var = sum(k * k * p for k, p in enumerate(probs, start=1)) - mean * mean
    num_verifies = SLO_WINDOW_TOKENS / mean
    return max(1.0, mean - CONFIDENCE_Z * math.sqrt(max(var, 0.0) / num_verifies))


def shortest_spec_len(target_tokens: float, alpha: float, max_spec_len: int) -> int | None:
    """Smallest verify length whose expected yield reaches `target_tokens`; None if none fits."""
    for spec_len in range(1, max_spec_len + 1):
        if expected_tokens(spec_len, alpha) >= target_tokens - 1e-12:
            return spec_len
    return None


def _lengths_for_anchor(
    tiers_s: Sequence[float],
    anchor: int,
    anchor_len: int,
    spec: SpecConfig,
    present: Sequence[int],
) -> dict[int, int] | None:
    """Every tier's shortest length matching the anchor's time per expected token.

    A tier with no decoder now that cannot match gets the length the planner counts on most
    (`planned_tokens`): its jobs' decode loads are planned with it, and the longest length
    would stretch their periods (and the drafter's share of every step) for nothing.
    """
    target_s = expected_tokens(anchor_len, spec.alpha_for(anchor)) * tiers_s[anchor]
    lengths: dict[int, int] = {}
    for tier, tpot_s in enumerate(tiers_s):
        alpha = spec.alpha_for(tier)
        found = shortest_spec_len(target_s / tpot_s, alpha, spec.max_spec_len)
        if found is None and tier in present:
            return None
        lengths[tier] = _most_dependable_len(alpha, spec.max_spec_len) if found is None else found
    return lengths


@cache
def _most_dependable_len(alpha: float, max_spec_len: int) -> int:
    """The verify length with the most `planned_tokens` (the shortest among ties)."""
    return max(range(1, max_spec_len + 1), key=lambda n: (planned_tokens(n, alpha), -n))


def choose_spec_lengths(
    tiers_s: Sequence[float],
    num_decodes_by_tier: Sequence[int],
    num_context_by_tier: Sequence[int],
    predictor: StepTimePredictor,
    spec: SpecConfig,
    max_batch_tokens: int,
) -> dict[int, int]:
    """Per-tier verify lengths that leave the most prefill time while every tier keeps pace.

    For every present tier i (the anchor) and length j, each tier k gets the shortest `s_k` with
    `E[s_k] * tpot_k >= E[j] * tpot_i`. All batches are alike: one every
    `unit = min_k planned_tokens(s_k) * tpot_k` seconds (SLOs-Serve: floor(E[s_k])), verifying
    `s_k` tokens per tier-k request.
    The choice maximises the prefill share `(unit - decode_step_time) / unit`; ties go to less
    speculation. Tighter tiers end up with longer speculation.

    Args:
        tiers_s: tier TPOTs, tightest first.
        num_decodes_by_tier: decoding requests per tier.
        num_context_by_tier: their cached tokens, summed per tier.
        predictor: step-time model.
        spec: acceptance model and maximum length.
        max_batch_tokens: engine cap on tokens per step.

    Returns:
        Verify length per tier index (1 = no speculation), for every tier.
    """
    present = [k for k, n in enumerate(num_decodes_by_tier) if n > 0]
    best: tuple[float, int, dict[int, int]] | None = None
    for anchor in present:
        for anchor_len in range(1, spec.max_spec_len + 1):
            lengths = _lengths_for_anchor(tiers_s, anchor, anchor_len, spec, present)
            if lengths is None:
                continue
            score = _score(
                lengths,
                present,
                tiers_s,
                num_decodes_by_tier,
                num_context_by_tier,
                predictor,
                spec,
                max_batch_tokens,
            )
            if score is not None and (best is None or score > best[:2]):
                best = (*score, lengths)
    return dict.fromkeys(range(len(tiers_s)), 1) if best is None else best[2]


def _score(
    lengths: dict[int, int],
    present: Sequence[int],
    tiers_s: Sequence[float],
    num_decodes_by_tier: Sequence[int],
    num_context_by_tier: Sequence[int],
    predictor: StepTimePredictor,
    spec: SpecConfig,
    max_batch_tokens: int,
) -> tuple[float, int] | None:
    """(prefill share of time, -decode tokens) of one choice; None if it overflows a step."""
    unit_s = min(planned_tokens(lengths[k], spec.alpha_for(k)) * tiers_s[k] for k in present)
    num_tokens = sum(num_decodes_by_tier[k] * lengths[k] for k in present)
    if num_tokens > max_batch_tokens:
        return None
    step_s = predictor.step_time_s(
        0,
        sum(num_decodes_by_tier[k] for k in present),
        sum(num_context_by_tier[k] for k in present),
        sum(num_decodes_by_tier[k] * (lengths[k] - 1) for k in present),
        num_draft_steps=max(lengths[k] for k in present) - 1,
    )
    return (unit_s - step_s) / unit_s, -num_tokens

"""SLO-adaptive speculation: per-tier verify lengths by the SLOs-Serve §4 enumeration."""

from __future__ import annotations

import math
from collections.abc import Sequence

from agentflow.planner.config import SpecConfig
from agentflow.planner.predictor import StepTimePredictor

__all__ = ["choose_spec_lengths", "expected_tokens", "shortest_spec_len"]


def expected_tokens(spec_len: int, alpha: float) -> float:
    """Expected tokens from one verify of length `spec_len` under geometric acceptance."""
    if alpha >= 1.0:
        return float(spec_len)
    return (1.0 - alpha**spec_len) / (1.0 - alpha)


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
    """Every tier's shortest length matching the anchor's time per expected token."""
    target_s = expected_tokens(anchor_len, spec.alpha_for(anchor)) * tiers_s[anchor]
    lengths: dict[int, int] = {}
    for tier, tpot_s in enumerate(tiers_s):
        found = shortest_spec_len(target_s / tpot_s, spec.alpha_for(tier), spec.max_spec_len)
        if found is None and tier in present:
            return None
        lengths[tier] = spec.max_spec_len if found is None else found
    return lengths


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
    `unit = min_k floor(E[s_k]) * tpot_k` seconds, verifying `s_k` tokens per tier-k request.
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
    unit_s = min(
        math.floor(expected_tokens(lengths[k], spec.alpha_for(k)) + 1e-9) * tiers_s[k]
        for k in present
    )
    num_tokens = sum(num_decodes_by_tier[k] * lengths[k] for k in present)
    if num_tokens > max_batch_tokens:
        return None
    step_s = predictor.step_time_s(
        0,
        sum(num_decodes_by_tier[k] for k in present),
        sum(num_context_by_tier[k] for k in present),
        sum(num_decodes_by_tier[k] * (lengths[k] - 1) for k in present),
    )
    return (unit_s - step_s) / unit_s, -num_tokens

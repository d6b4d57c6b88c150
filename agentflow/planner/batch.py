"""This step's batch: time budget to the earliest decode deadline, decodes, prefill chunks.

SLOs-Serve's AR batch planner sizes each batch to end at the earliest pending decode deadline
(dynamic batch size): the step may take the time until the first admitted decoder's next token
is due. Decoders whose token interval opens before the step ends must decode; the remaining time
is poured into admitted prompts EDF-first, as chunks (chunked prefill).
"""

from __future__ import annotations

import numpy as np

from agentflow.planner.config import PlannerConfig
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.step_plan import Admission, StepPlan

__all__ = ["build_step_plan", "pour_prefill"]


def pour_prefill(
    predictor: StepTimePredictor,
    left_s: list[float],
    prompts: list[tuple[str, int, int]],
    max_tokens: int,
    max_seqs: int,
) -> dict[str, int]:
    """Fill the step's leftover time with prompt chunks, first prompt first.

    Args:
        predictor: step-time model; each piece keeps its own time left (`left_s`, updated).
        left_s: time left per predictor piece once the decodes are paid for.
        prompts: (request_id, num_computed_tokens, num_prompt_tokens) in EDF order.
        max_tokens: token room left in the step.
        max_seqs: sequence room left in the step.

    Returns:
        request_id -> chunk size, for chunks of at least one token.
    """
    chunks: dict[str, int] = {}
    for request_id, offset, prompt in prompts:
        if max_tokens <= 0 or len(chunks) >= max_seqs:
            break
        n = min(
            prompt - offset,
            max_tokens,
            *(p.max_chunk_tokens(t, offset) for p, t in zip(predictor.pieces, left_s, strict=True)),
        )
        while n > 0 and any(
            p.chunk_cost_s(offset, n) > t + 1e-12
            for p, t in zip(predictor.pieces, left_s, strict=True)
        ):
            n -= 1
        if n <= 0:
            continue
        for i, p in enumerate(predictor.pieces):
            left_s[i] -= p.chunk_cost_s(offset, n)
        chunks[request_id] = n
        max_tokens -= n
    return chunks


def _time_budget_s(problem: PlanningProblem, decoders: np.ndarray, config: PlannerConfig) -> float:
    """Time until the earliest pending decode deadline (less the tier margin), capped."""
    if len(decoders) == 0:
        return config.horizon_s
    earliest = float(problem.slack_s[decoders].min()) - config.tier_margin_s
    return min(config.horizon_s, earliest)


def build_step_plan(
    problem: PlanningProblem,
    admission: Admission,
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> StepPlan:
    """Lay out this step for an admission decision (see the module docstring)."""
    reqs, admitted = problem.requests, admission.admitted
    remaining_out = np.array([r.max_output_tokens - r.num_output_tokens for r in reqs])
    decoders = np.flatnonzero(admitted & problem.is_decoding & (remaining_out > 0))
    budget_s = _time_budget_s(problem, decoders, config)
    tpot = np.array([reqs[i].tpot_s for i in decoders])
    must = decoders[problem.slack_s[decoders] - tpot < budget_s]
    must = must[np.argsort(problem.slack_s[must], kind="stable")]
    spec = problem.spec_len[must]
    num_decode_tokens = int(spec.sum())
    context = sum(reqs[i].num_context_tokens() for i in must)
    features = (len(must), context, int((spec - 1).sum()))
    budget_s = max(budget_s, predictor.step_time_s(0, *features))
    left_s = [budget_s - predictor.bias_s - p.time_s(0, *features) for p in predictor.pieces]

    prompts = [
        (reqs[i].request_id, reqs[i].num_computed_tokens, reqs[i].num_prompt_tokens)
        for i in np.flatnonzero(admitted & ~problem.is_decoding)
    ]
    token_room = config.max_num_batched_tokens - num_decode_tokens
    seq_room = config.max_num_seqs - len(must)
    chunks = pour_prefill(predictor, left_s, prompts, token_room, seq_room)
    token_room -= sum(chunks.values())
    spare = min(
        [
            token_room,
            *(p.max_chunk_tokens(t, 0) for p, t in zip(predictor.pieces, left_s, strict=True)),
        ]
    )
    spare = max(spare, 0)

    best_effort = np.flatnonzero(~admitted)
    planned = len(must) + len(chunks)
    if spare > 0:
        planned += len(decoders) - len(must) + len(best_effort)
    ids = [r.request_id for r in reqs]
    return StepPlan(
        admitted_ids=tuple(ids[i] for i in np.flatnonzero(admitted)),
        newly_admitted_ids=tuple(ids[i] for i in np.flatnonzero(admitted & ~problem.is_old)),
        best_effort_ids=tuple(ids[i] for i in best_effort),
        prefill_tokens_by_id=chunks,
        num_decode_tokens=num_decode_tokens,
        token_budget=num_decode_tokens + sum(chunks.values()),
        max_batch_size=max(1, min(config.max_num_seqs, planned)),
        step_time_budget_s=budget_s,
        spec_len_by_tier=dict(problem.spec_len_by_tier),
        tpot_tiers_s=problem.tiers_s,
        decode_ids=tuple(ids[i] for i in must),
        num_spare_tokens=int(spare),
        tier_by_id={ids[i]: int(problem.tier[i]) for i in np.flatnonzero(admitted)},
        reason_by_id={ids[j]: reason for j, reason in admission.reason_by_job.items()},
        is_overloaded=admission.is_overloaded,
    )

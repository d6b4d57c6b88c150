"""This step's batch: time budget to the earliest decode deadline, decodes, prefill chunks.

SLOs-Serve's AR batch planner sizes each batch to end at the earliest pending decode deadline
(dynamic batch size): the step may take the time until the first admitted decoder's next token
is due, and no longer than the TTFT deadline of the first prompt if that prompt can finish in
it. Decoders whose token interval opens before the step ends must decode; the remaining time is
poured into admitted prompts EDF-first, as chunks (chunked prefill).

Admitted decoders ahead of schedule ride along (`decode_ids` lists them after the must-run
ones) when the prompts can wait for them: a decoder that runs ahead leaves sooner and frees
its KV, which is what a memory-bound replica needs, but its decode time comes out of the
prompts' time. The earliest-due ones ride as long as their extra time fits the step's budget
and the admitted prompts' least margin under the admission's own fluid model; the rest wait.
Either way the step is planned to end by the earliest decode deadline: the engines used to
run every admitted decoder on top of the plan, which pushed steps past that deadline (in
scratch simulations of benchmarks/capacity_sim.py's scenarios 0.5-2.2 % of admitted requests
missed their TPOT by 1-8 ms at capacity, all at the 20th token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentflow.planner.config import PlannerConfig
from agentflow.planner.ledger import least_prompt_margin_s
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.step_plan import Admission, StepPlan

__all__ = ["build_step_plan", "pour_prefill"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


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


@dataclass(frozen=True, slots=True)
class _Decodes:
    """The step's decode side: its time budget and the decoders that must run."""

    budget_s: float
    pending: IntArray
    """Admitted jobs still decoding."""
    must: IntArray
    """Those whose next token's interval opens before the step ends, earliest due first."""
    context: IntArray
    """Cached tokens per job (pending ones; 0 for the rest), counted once per plan."""
    step_s: float
    """Predicted time of the must-run decodes alone (their drafts included)."""


def _plan_decodes(
    problem: PlanningProblem,
    admitted: BoolArray,
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> _Decodes:
    """Budget = time until the earliest pending decode deadline (less the tier margin).

    A step also ends by the TTFT deadline of the first prompt in EDF order when that prompt can
    finish in it: its first token comes out when the step ends.
    """
    has_tokens_left = problem.load_end_s > problem.load_start_s
    pending = np.flatnonzero(admitted & problem.is_decoding & has_tokens_left)
    budget_s = config.horizon_s
    if len(pending):
        budget_s = min(budget_s, float(problem.slack_s[pending].min()) - config.tier_margin_s)
    context = np.zeros(problem.num_jobs, dtype=np.int64)
    context[pending] = [problem.requests[i].num_context_tokens() for i in pending.tolist()]
    dec = _must_decode(problem, pending, context, budget_s, predictor)
    prompts = np.flatnonzero(admitted & ~problem.is_decoding)
    if len(prompts):
        first = int(prompts[0])  # EDF order
        deadline_s = float(problem.deadline_s[first])  # already less the margin
        if deadline_s < dec.budget_s:
            capped = _must_decode(problem, pending, context, deadline_s, predictor)
            if capped.step_s + float(problem.work_s[first]) <= deadline_s:
                dec = capped
    return dec


def _must_decode(
    problem: PlanningProblem,
    pending: IntArray,
    context: IntArray,
    budget_s: float,
    predictor: StepTimePredictor,
) -> _Decodes:
    """Decoders whose next token's interval opens before the step ends."""
    opens_s = problem.slack_s[pending] - problem.tpot_s[pending]
    must = pending[opens_s < budget_s]
    must = must[np.argsort(problem.slack_s[must], kind="stable")]
    spec = problem.spec_len[must]
    draft_s = predictor.draft_s(int(spec.max(initial=1)) - 1)
    step_s = predictor.step_time_s(0, *_decode_features(problem, context, must)) + draft_s
    # Behind schedule: the step cannot be shorter than its decodes.
    return _Decodes(max(budget_s, step_s), pending, must, context, step_s)


def _decode_features(
    problem: PlanningProblem, context: IntArray, jobs: IntArray
) -> tuple[int, int, int]:
    """(decode requests, their cached tokens, draft tokens) of `jobs` for the predictor."""
    return len(jobs), int(context[jobs].sum()), int((problem.spec_len[jobs] - 1).sum())


def _riders(
    problem: PlanningProblem,
    admission: Admission,
    dec: _Decodes,
    predictor: StepTimePredictor,
) -> IntArray:
    """Ahead-of-schedule decoders that ride along this step, earliest due first (may be none).

    The longest earliest-due run of them whose time fits: the step holds them within its
    budget, and the admitted prompts keep at least their extra time as margin under the
    admission's own fluid model (`Admission.prompt_margin_s`). All-or-none cost speculation
    most: a verify is several tokens, so the whole set rarely fit and none rode.
    """
    admitted = admission.admitted
    is_must = np.zeros(problem.num_jobs, dtype=bool)
    is_must[dec.must] = True
    ahead: IntArray = dec.pending[~is_must[dec.pending]]  # a mask beats np.setdiff1d here
    if not len(ahead):
        return ahead
    ahead = ahead[np.argsort(problem.slack_s[ahead], kind="stable")]
    room_s = dec.budget_s - dec.step_s
    if np.any(admitted & ~problem.is_decoding):
        margin_s = admission.prompt_margin_s
        if margin_s is None:
            margin_s = least_prompt_margin_s(problem, admitted)
        room_s = min(room_s, margin_s)
    if room_s <= 0.0:
        return ahead[:0]

    # Decode features of the must-run set plus the first k riders, for every k at once.
    num_must, must_context, must_drafts = _decode_features(problem, dec.context, dec.must)
    context = must_context + np.cumsum(dec.context[ahead])
    drafts = must_drafts + np.cumsum(problem.spec_len[ahead] - 1)
    longest = np.maximum.accumulate(problem.spec_len[ahead])
    longest = np.maximum(longest, int(problem.spec_len[dec.must].max(initial=1)))

    def extra_s(count: int) -> float:
        k = count - 1
        step_s = predictor.step_time_s(0, num_must + count, int(context[k]), int(drafts[k]))
        return step_s + predictor.draft_s(int(longest[k]) - 1) - dec.step_s

    # The extra time grows with the count: all of them often fit, else bisect for the most.
    if extra_s(len(ahead)) <= room_s:
        return ahead
    lo, hi = 0, len(ahead) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if extra_s(mid) <= room_s:
            lo = mid
        else:
            hi = mid - 1
    return ahead[:lo]


def build_step_plan(
    problem: PlanningProblem,
    admission: Admission,
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> StepPlan:
    """Lay out this step for an admission decision (see the module docstring)."""
    reqs, admitted = problem.requests, admission.admitted
    dec = _plan_decodes(problem, admitted, predictor, config)
    decoders = np.concatenate([dec.must, _riders(problem, admission, dec, predictor)])
    spec = problem.spec_len[decoders]
    draft_s = predictor.draft_s(int(spec.max(initial=1)) - 1)
    features = _decode_features(problem, dec.context, decoders)
    num_decode_tokens = int(spec.sum())
    left_s = [
        dec.budget_s - predictor.bias_s - draft_s - p.time_s(0, *features) for p in predictor.pieces
    ]
    prompts = [
        (reqs[i].request_id, reqs[i].num_computed_tokens, reqs[i].num_prompt_tokens)
        for i in np.flatnonzero(admitted & ~problem.is_decoding).tolist()
    ]
    token_room = config.max_num_batched_tokens - num_decode_tokens
    seq_room = config.max_num_seqs - len(decoders)
    chunks = pour_prefill(predictor, left_s, prompts, token_room, seq_room)
    token_room -= sum(chunks.values())
    fits = (p.max_chunk_tokens(t, 0) for p, t in zip(predictor.pieces, left_s, strict=True))
    spare = max(0, min(token_room, *fits))
    best_effort = np.flatnonzero(~admitted)
    planned = len(decoders) + len(chunks)
    if spare > 0:  # room for the other ahead-of-schedule decoders and best-effort work
        planned += len(dec.pending) - len(decoders) + len(best_effort)
    ids = [r.request_id for r in reqs]
    admitted_jobs = np.flatnonzero(admitted).tolist()
    return StepPlan(
        admitted_ids=tuple(ids[i] for i in admitted_jobs),
        newly_admitted_ids=tuple(ids[i] for i in admitted_jobs if not problem.is_old[i]),
        best_effort_ids=tuple(ids[i] for i in best_effort.tolist()),
        prefill_tokens_by_id=chunks,
        num_decode_tokens=num_decode_tokens,
        token_budget=num_decode_tokens + sum(chunks.values()),
        max_batch_size=max(1, min(config.max_num_seqs, planned)),
        step_time_budget_s=dec.budget_s,
        spec_len_by_tier=dict(problem.spec_len_by_tier),
        tpot_tiers_s=problem.tiers_s,
        decode_ids=tuple(ids[i] for i in decoders.tolist()),
        num_spare_tokens=int(spare),
        tier_by_id={ids[i]: int(problem.tier[i]) for i in admitted_jobs},
        reason_by_id={ids[j]: reason for j, reason in admission.reason_by_job.items()},
        is_overloaded=admission.is_overloaded,
        is_complete=admission.is_complete,
    )

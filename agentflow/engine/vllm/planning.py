"""Translation between vLLM's scheduler state and the planner's terms (engine-core side).

Kept apart from the scheduler mixin so that the mixin stays a thin wrapper around
`super().schedule()`: this module turns vLLM `Request`s into `PlanRequest`s and a `StepPlan`
into the few scheduler settings the mixin changes for one step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vllm.v1.request import Request

from agentflow.planner import (
    PlanRequest,
    SpareBudget,
    StepPlan,
    StepTimePredictor,
    chunk_context_tokens,
    spare_step_limit_s,
)

__all__ = ["BEST_EFFORT_PRIORITY_OFFSET", "StepSettings", "settings_for", "to_plan_request"]

BEST_EFFORT_PRIORITY_OFFSET = 10**15
"""Added to a best-effort request's heap key so every admitted request is considered first."""


def to_plan_request(
    request: Request,
    *,
    ttft_s: float,
    tpot_s: float,
    first_token_s: float | None,
    admitted: bool,
    num_cached_tokens: int = 0,
) -> PlanRequest:
    """The planner's view of one vLLM request (wall clock: vLLM stamps `arrival_time`).

    `num_cached_tokens`: prompt tokens a waiting request will find in the prefix cache when
    vLLM schedules it; they cost no prefill.
    """
    num_prompt = request.num_prompt_tokens
    params = request.sampling_params
    max_tokens = params.max_tokens if params is not None and params.max_tokens else 1
    return PlanRequest(
        request_id=request.request_id,
        arrival_s=request.arrival_time,
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        num_prompt_tokens=num_prompt,
        # A preempted request recomputes from zero; clamp so the planner sees a valid state.
        num_computed_tokens=min(max(request.num_computed_tokens, num_cached_tokens), num_prompt),
        num_output_tokens=request.num_output_tokens,
        max_output_tokens=max(1, max_tokens),
        first_token_s=first_token_s,
        is_admitted=admitted,
    )


@dataclass(frozen=True, slots=True)
class StepSettings:
    """The scheduler attributes one plan sets for one step."""

    token_budget: int
    admitted_ids: frozenset[str]
    decode_rank_by_id: dict[str, int]
    """request_id -> position in the running list (admitted by urgency, best-effort last)."""
    hidden_ids: frozenset[str]
    """Running requests sat out this step; they keep their KV and run in a later step:
    best-effort decoders beyond the spare tokens, and running prompts the plan gives no chunk
    while an earlier-deadline waiting prompt has one."""
    verify_limits: dict[str, int] = field(default_factory=dict)
    """request_id -> drafts the step may verify, for admitted decoders allowed any
    (speculation; `draft_limits` of `settings_for`)."""


def settings_for(
    plan: StepPlan,
    *,
    running: Sequence[Request],
    predictor: StepTimePredictor,
    max_spare_step_s: float,
    max_tokens_cap: int,
    draft_limits: Mapping[str, int] | None = None,
) -> StepSettings:
    """Lay one plan out as vLLM settings, the way the simulator's agentflow policy does.

    The step holds the plan's decodes (must-run, and the ahead-of-schedule decoders the plan
    lets ride along) and prefill chunks, then spare work up to the plan's time budget (the
    earliest admitted decode deadline) and `spare_step_limit_s`:
    first the other ahead-of-schedule admitted decoders (a request ahead of its TPOT finishes
    sooner and frees its KV), then best-effort decoders and prompts. Filling the plan's whole
    budget with best-effort work would make a request arriving meanwhile wait that long for
    its first chunk. Decoders that do not fit sit the step out.

    `draft_limits` (speculation): drafts each request may verify; an admitted decoder's step
    tokens are its own token plus the drafts it holds up to that limit.
    """
    admitted = frozenset(plan.admitted_ids)
    chunks = plan.prefill_tokens_by_id
    planned = {rid: rank for rank, rid in enumerate(plan.decode_ids)}
    decoders = [r for r in running if _is_decoding(r)]
    planned_decoders = [r for r in decoders if r.request_id in planned]
    ahead_decoders = [
        r for r in decoders if r.request_id in admitted and r.request_id not in planned
    ]
    best_effort_decoders = [r for r in decoders if r.request_id not in admitted]
    ranks = {
        r.request_id: planned.get(r.request_id, len(planned))
        + (0 if r.request_id in admitted else 1)
        for r in running
    }
    limits = draft_limits or {}

    def drafts_of(request: Request) -> int:
        return min(len(request.spec_token_ids), limits.get(request.request_id, 0))

    def num_drafts(requests: Sequence[Request]) -> int:
        return sum(drafts_of(r) for r in requests)

    planned_prefill = sum(chunks.values())
    by_id = {r.request_id: r for r in running}
    pairs = sum(
        chunk_context_tokens(by_id[rid].num_computed_tokens if rid in by_id else 0, n)
        for rid, n in chunks.items()
    )
    spare = SpareBudget(
        predictor,
        spare_step_limit_s(predictor, max_spare_step_s, plan.step_time_budget_s),
        plan.num_spare_tokens,
        num_decodes=len(planned_decoders),
        num_context_tokens=sum(_context(r) for r in planned_decoders),
        num_spec_tokens=num_drafts(planned_decoders),
        num_prefill_tokens=planned_prefill,
        num_prefill_pairs=pairs,
    )
    # An ahead-of-schedule admitted decoder verifies its drafts (priced so); a best-effort
    # one verifies none (`verify_limits` below holds admitted requests only).
    ahead_decodes = ((_context(r), drafts_of(r)) for r in ahead_decoders)
    kept_ahead = ahead_decoders[: spare.take_decodes(ahead_decodes)]
    best_effort_decodes = ((_context(r), 0) for r in best_effort_decoders)
    kept_best_effort = best_effort_decoders[: spare.take_decodes(best_effort_decodes)]
    spare_prefill = spare.prefill_tokens()
    running_admitted = [*planned_decoders, *kept_ahead]
    verify_limits = {
        r.request_id: limits[r.request_id] for r in running_admitted if limits.get(r.request_id)
    }
    # vLLM serves the running list before the waiting queue, so a running prompt behind a
    # waiting one in the plan's deadline order (or given no chunk) would take the tokens
    # planned for the waiting one: sit it out this step.
    deferred = {r.request_id for r in running if not _is_decoding(r)}
    for rid, num_tokens in chunks.items():  # in deadline order
        if rid not in by_id and num_tokens > 0:
            break
        deferred.discard(rid)
    else:
        deferred = set()  # no waiting prompt has a chunk: running prompts may take it all
    left_out = [*ahead_decoders[len(kept_ahead) :], *best_effort_decoders[len(kept_best_effort) :]]
    hidden = frozenset(r.request_id for r in left_out) | deferred
    budget = (
        len(running_admitted)
        + num_drafts(running_admitted)
        + len(kept_best_effort)
        + planned_prefill
        + spare_prefill
    )
    return StepSettings(
        token_budget=max(1, min(max_tokens_cap, budget)),
        admitted_ids=admitted,
        decode_rank_by_id=ranks,
        hidden_ids=hidden,
        verify_limits=verify_limits,
    )


def _context(decoder: Request) -> int:
    """The tokens the decoder's next decode attends to."""
    return decoder.num_computed_tokens + 1


def _is_decoding(request: Request) -> bool:
    """Whether the request has its whole prompt computed and a first token out."""
    return (
        request.num_output_tokens > 0 and request.num_computed_tokens >= request.num_prompt_tokens
    )

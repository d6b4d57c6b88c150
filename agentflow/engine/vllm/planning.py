"""Translation between vLLM's scheduler state and the planner's terms (engine-core side).

Kept apart from the scheduler mixin so that the mixin stays a thin wrapper around
`super().schedule()`: this module turns vLLM `Request`s into `PlanRequest`s and a `StepPlan`
into the few scheduler settings the mixin changes for one step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vllm.v1.request import Request

from agentflow.planner import PlanRequest, StepPlan

__all__ = ["BEST_EFFORT_PRIORITY_OFFSET", "StepSettings", "settings_for", "to_plan_request"]

BEST_EFFORT_PRIORITY_OFFSET = 10**15
"""Added to a best-effort request's heap key so every admitted request is considered first."""


def to_plan_request(
    request: Request, *, ttft_s: float, tpot_s: float, first_token_s: float | None, admitted: bool
) -> PlanRequest:
    """The planner's view of one vLLM request (wall clock: vLLM stamps `arrival_time`)."""
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
        num_computed_tokens=min(request.num_computed_tokens, num_prompt),
        num_output_tokens=request.num_output_tokens,
        max_output_tokens=max(1, max_tokens),
        first_token_s=first_token_s,
        is_admitted=admitted,
    )


@dataclass(frozen=True, slots=True)
class StepSettings:
    """The scheduler attributes one plan sets for one step."""

    token_budget: int
    max_active_reqs: int
    admitted_ids: frozenset[str]
    decode_rank_by_id: dict[str, int]
    """request_id -> position in the running list (admitted by urgency, best-effort last)."""
    hidden_ids: frozenset[str]
    """Decoders sat out this step: ahead of schedule or best-effort, beyond the spare tokens.
    Hiding them keeps the planned prefill room; they keep their KV and run in a later step."""


def settings_for(
    plan: StepPlan,
    *,
    running: Iterable[Request],
    num_running: int,
    max_tokens_cap: int,
    max_active_cap: int,
) -> StepSettings:
    """Turn a plan into this step's budgets, clamped to what vLLM's asserts allow."""
    admitted = frozenset(plan.admitted_ids)
    must_decode = {rid: rank for rank, rid in enumerate(plan.decode_ids)}
    ranks: dict[str, int] = {}
    optional: list[Request] = []  # decoders that need no token this step
    for request in running:
        rid = request.request_id
        if rid in must_decode:
            ranks[rid] = must_decode[rid]
            continue
        # admitted and ahead of schedule after the urgent ones; best-effort last, so that it is
        # the first preemption victim
        ranks[rid] = len(must_decode) + (1 if rid in admitted else 2)
        if _is_decoding(request):
            optional.append(request)
    optional.sort(key=lambda r: ranks[r.request_id])
    # Sit decoders out only to protect planned prefill room; otherwise serve them (work
    # conservation: an idle step while requests wait only wastes capacity).
    has_prefill = any(plan.prefill_tokens_by_id.values())
    spare = plan.num_spare_tokens if has_prefill else len(optional)
    hidden = frozenset(r.request_id for r in optional[spare:])
    budget = plan.token_budget + plan.num_spare_tokens
    return StepSettings(
        token_budget=max(1, min(max_tokens_cap, budget)),
        max_active_reqs=max(num_running, min(max_active_cap, plan.max_batch_size)),
        admitted_ids=admitted,
        decode_rank_by_id=ranks,
        hidden_ids=hidden,
    )


def _is_decoding(request: Request) -> bool:
    return (
        request.num_output_tokens > 0 and request.num_computed_tokens >= request.num_prompt_tokens
    )

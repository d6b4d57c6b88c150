"""What a plan hands the engine: admission decisions and this step's budgets."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Admission", "Rejection", "StepPlan"]


class Rejection(enum.StrEnum):
    """Why a request was left best-effort."""

    MEMORY = "memory"
    """Its KV blocks do not fit beside the admitted requests."""
    COMPUTE = "compute"
    """A prefill deadline or a decode cadence would be missed."""
    SEQS = "max_num_seqs"
    """The engine's sequence cap is reached."""
    LATE = "late"
    """It already missed its TTFT or is behind its TPOT schedule."""
    OLD_INFEASIBLE = "old_infeasible"
    """The earlier admissions alone are infeasible, so nothing new is admitted."""


@dataclass(frozen=True, slots=True)
class Admission:
    """An admission decision over a problem's jobs (EDF order)."""

    admitted: npt.NDArray[np.bool_]
    reason_by_job: dict[int, Rejection]
    """job index -> why it stayed best-effort (candidates only)."""
    is_complete: bool = True
    """False when the exact planner ran out of its work cap (the decision is the fallback's)."""
    is_overloaded: bool = False
    """The old jobs alone are infeasible, so no candidate was admitted."""
    prompt_margin_s: float | None = None
    """Prefill supply (seconds) the admitted prompts can spare before one misses its deadline,
    where the planner kept it (`Ledger.least_margin_s`); None: worked out when needed."""


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One planning round: who is guaranteed, and what the next engine step may contain.

    Token counts are per step. A decode of a request with verify length s counts s tokens.
    """

    admitted_ids: tuple[str, ...]
    """Every request the plan guarantees (old and new), in EDF order."""
    newly_admitted_ids: tuple[str, ...]
    """The admitted requests that were not admitted before this plan."""
    best_effort_ids: tuple[str, ...]
    """Not admitted: they may use spare budget only, and are reconsidered every plan."""
    prefill_tokens_by_id: dict[str, int]
    """request_id -> prefill chunk planned for this step (admitted requests, EDF-first)."""
    num_decode_tokens: int
    """Decode tokens this step must run (for `decode_ids`)."""
    token_budget: int
    """Planned tokens this step: `num_decode_tokens + sum(prefill_tokens_by_id)`."""
    max_batch_size: int
    """Sequences this step may hold (<= max_num_seqs)."""
    step_time_budget_s: float
    """Time until the earliest pending decode deadline, capped by the horizon."""
    spec_len_by_tier: dict[int, int]
    """Tier index -> verify length; empty when speculation is off."""
    tpot_tiers_s: tuple[float, ...]
    """Tier TPOTs, tightest first."""
    decode_ids: tuple[str, ...] = ()
    """Admitted decoders this step runs: first those whose token interval opens before the
    step ends (they must decode), then the ahead-of-schedule ones the plan lets ride along
    (their time is in the plan). Other admitted decoders may decode with spare tokens."""
    num_spare_tokens: int = 0
    """Tokens that still fit in the step after every admitted decode and the planned chunks
    (for best-effort work)."""
    tier_by_id: dict[str, int] = field(default_factory=dict)
    """request_id -> planning tier (from slack) for admitted requests."""
    reason_by_id: dict[str, Rejection] = field(default_factory=dict)
    """request_id -> why it is best-effort."""
    is_overloaded: bool = False
    """The earlier admissions alone no longer fit the model (new ones were all refused)."""
    is_complete: bool = True
    """False when the exact planner hit its work cap and the fast planner's admission is used."""

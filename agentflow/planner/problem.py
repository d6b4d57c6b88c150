"""The admission problem: requests turned into jobs of the fluid EDF model, in EDF order."""

# NOTE(planner): the feasibility model shared by every planner, the simulator and the tests.
# Times are relative to `now`. The engine runs back-to-back steps; while decoders are active a
# step lasts at most the tightest active cadence `p`, so a share `base_s / p` of time is step
# overhead, and each active decoder takes a share `decode_cost / cadence` (it needs a token
# every cadence; loose decoders sit out steps, as in SLOs-Serve's AR planner). The rest,
# rho(t) = 1 - base_s / p(t) - sum(load), is prefill supply, in seconds of marginal step time.
# A set of jobs is feasible iff
#   (1) rho >= 0 at all times (decodes are sustainable);
#   (2) EDF meets every prefill deadline: at each deadline, the prefill work due by then plus
#       one decode round of the decoders active just before it plus `deadline_overhead_s` is
#       <= the integral of rho. Steps are discrete: the step that ends at a deadline still
#       carries every due decode and its own overhead, of which the fluid share has paid only
#       r * base_s / p for a step of length r >= base_s. The unpaid rest is charged once per
#       deadline checked, not once per prompt: the share already pays for the earlier steps.
#       `deadline_overhead_s` is that rest at the idle share; where decoders set a tighter
#       cadence in the interval just before the deadline, the step's last min(base_s, interval)
#       seconds were charged at that cadence, and the difference is credited back
#       (`Grid.overhead_credit`);
#   (3) their KV blocks fit; (4) they fit in max_num_seqs.
# A prefilling job decodes from its TTFT deadline (decode credit starts there) until its last
# token is due. A decoder ahead of schedule adds no load until its next token's interval
# opens, which is how slack turns into a looser plan. Every TPOT here is the request's TPOT
# times (1 + `PlannerConfig.tpot_tolerance`): the cadence the plan promises.

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError
from agentflow.planner.config import PlannerConfig
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.request import PlanRequest
from agentflow.planner.spec import choose_spec_lengths, planned_tokens
from agentflow.planner.tiers import derive_tiers, tiers_for_slack

__all__ = ["PlanningProblem", "build_problem"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PlanningProblem:
    """Jobs of one plan, sorted by prefill deadline (EDF); arrays are indexed by job."""

    requests: tuple[PlanRequest, ...]
    tiers_s: tuple[float, ...]
    spec_len_by_tier: dict[int, int]
    is_old: BoolArray
    """Admitted by an earlier plan: must stay admitted."""
    is_late: BoolArray
    """A candidate that already missed its TTFT or is behind its TPOT schedule: never admitted
    (it cannot meet its SLO any more)."""
    is_decoding: BoolArray
    deadline_s: FloatArray
    """Prefill deadline less the tier margin (0 for decoders; a late old prefill gets its
    isolated time)."""
    work_s: FloatArray
    """Remaining prefill work, in seconds of marginal step time (0 for decoders)."""
    load_start_s: FloatArray
    """When the job's decode load begins (its TTFT deadline, or its next token's interval)."""
    load_end_s: FloatArray
    """When its last token is due."""
    load: FloatArray
    """Share of engine time the job's decoding takes while active."""
    decode_cost_s: FloatArray
    """Marginal step time of one of the job's decode visits (one token, or one verify)."""
    level: IntArray
    """Index into `periods_s` of the job's decode cadence."""
    periods_s: FloatArray
    """Distinct step cadences, ascending, capped by the idle step; the last entry is idle."""
    num_blocks: IntArray
    """KV blocks reserved for prompt plus max output."""
    tier: IntArray
    """Planning tier from slack (SLOs-Serve §1)."""
    slack_s: FloatArray
    """Time until the next token (first token while prefilling) is due."""
    decode_period_s: FloatArray
    """Time between the job's required decode visits (its tier TPOT, stretched by speculation)."""
    tpot_s: FloatArray
    """The request's own TPOT budget."""
    spec_len: IntArray
    """Verify length of the job's decodes (1 without speculation)."""
    base_s: float
    """Per-step overhead (an empty step's predicted time)."""
    deadline_overhead_s: float
    """Step overhead charged at each prefill deadline checked (the step that ends there)."""
    kv_blocks_total: int
    max_num_seqs: int

    @property
    def num_jobs(self) -> int:
        """Number of jobs."""
        return len(self.requests)

    @property
    def idle_level(self) -> int:
        """Cadence level meaning 'no decoder active'."""
        return len(self.periods_s) - 1


_FIELDS = (
    "arrival_s",
    "ttft_s",
    "tpot_s",
    "num_prompt_tokens",
    "num_computed_tokens",
    "num_output_tokens",
    "max_output_tokens",
    "first_token_s",
    "is_admitted",
)


def _fields(reqs: Sequence[PlanRequest]) -> dict[str, FloatArray]:
    """The requests' fields as float columns (`first_token_s`: NaN when None)."""
    nan = math.nan
    rows = np.array(
        [
            (
                r.arrival_s,
                r.ttft_s,
                r.tpot_s,
                r.num_prompt_tokens,
                r.num_computed_tokens,
                r.num_output_tokens,
                r.max_output_tokens,
                nan if r.first_token_s is None else r.first_token_s,
                r.is_admitted,
            )
            for r in reqs
        ],
        dtype=np.float64,
    ).reshape(len(reqs), len(_FIELDS))
    columns = np.ascontiguousarray(rows.T)
    return dict(zip(_FIELDS, columns, strict=True))


def _spec_lengths(
    f: dict[str, FloatArray],
    decoding: BoolArray,
    tier: IntArray,
    tiers_s: tuple[float, ...],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> dict[int, int]:
    """Per-tier verify lengths from the admitted decoders (empty when speculation is off)."""
    if config.speculation is None:
        return {}
    chosen = decoding & (f["is_admitted"] > 0)
    counts = np.bincount(tier[chosen], minlength=len(tiers_s))
    context = np.bincount(
        tier[chosen],
        weights=(f["num_computed_tokens"] + f["num_output_tokens"])[chosen],
        minlength=len(tiers_s),
    )
    return choose_spec_lengths(
        tiers_s,
        [int(c) for c in counts],
        [int(c) for c in context],
        predictor,
        config.speculation,
        config.max_num_batched_tokens,
    )


def _periods(
    tier: IntArray,
    own_tpot_s: FloatArray,
    spec_len_by_tier: dict[int, int],
    config: PlannerConfig,
) -> tuple[FloatArray, IntArray]:
    """Decode period per job (own tier TPOT times `planned_tokens`) and its verify length."""
    spec_len = np.ones(len(tier), dtype=np.int64)
    factor = np.ones(len(tier))
    if config.speculation is not None:
        for k, length in spec_len_by_tier.items():
            mask = tier == k
            spec_len[mask] = length
            alpha = config.speculation.alpha_for(k)
            factor[mask] = planned_tokens(length, alpha)
    return own_tpot_s * factor, spec_len


def _timing(
    f: dict[str, FloatArray], now_s: float, tiers_s: tuple[float, ...], config: PlannerConfig
) -> dict[str, Any]:
    """When each job's next token is due, its planning tier, and its own TPOT tier."""
    decoding = f["num_computed_tokens"] >= f["num_prompt_tokens"]
    prefill_dl = f["arrival_s"] + f["ttft_s"]
    first = f["first_token_s"]
    origin = np.where(np.isnan(first), prefill_dl, np.fmax(prefill_dl, first))
    slack = np.where(decoding, origin + f["num_output_tokens"] * f["tpot_s"], prefill_dl) - now_s
    own = np.maximum(f["tpot_s"] - config.tier_margin_s, 0.5 * f["tpot_s"]) + 1e-12
    tiers = np.asarray(tiers_s, dtype=np.float64)
    return {
        "decoding": decoding,
        "is_old": f["is_admitted"] > 0,
        "prefill_dl": prefill_dl - now_s - config.tier_margin_s,
        "ttft_missed": ~np.isnan(first) & (first > prefill_dl),
        "end": origin + (f["max_output_tokens"] - 1) * f["tpot_s"] - now_s,
        "slack": slack,
        "tier": tiers_for_slack(tiers, slack),
        "own_tpot": tiers[tiers_for_slack(tiers, own)],
    }


def _prefill(
    f: dict[str, FloatArray], t: dict[str, Any], predictor: StepTimePredictor
) -> dict[str, Any]:
    """Prefill work and deadlines. An old job behind its deadline is served first (relaxed).

    The step overhead of the step that ends at a deadline is charged by the feasibility check,
    once per deadline (module NOTE), so the work here is the prompt's marginal time only. A
    late old prompt is relaxed to its isolated time (work plus one step).
    """
    decoding, is_old = t["decoding"], t["is_old"]
    work = predictor.prefill_work_array(f["num_computed_tokens"], f["num_prompt_tokens"])
    work = np.where(decoding, 0.0, work)
    deadline = np.where(decoding, 0.0, t["prefill_dl"])
    relaxed = work + predictor.base_s
    deadline = np.where(is_old & ~decoding, np.maximum(deadline, relaxed), deadline)
    missed = np.where(decoding, (t["slack"] < 0) | t["ttft_missed"], deadline <= 0)
    is_late = ~is_old & missed
    # Time starts now: a late candidate's past deadline must not add supply before it.
    return {"work": work, "deadline": np.maximum(deadline, 0.0), "is_late": is_late}


def _decode_window(
    f: dict[str, FloatArray],
    t: dict[str, Any],
    deadline: FloatArray,
    period: FloatArray,
    spec_len: IntArray,
    predictor: StepTimePredictor,
) -> dict[str, Any]:
    """Decode load: from the next token's interval (or the TTFT deadline) to the last token."""
    decoding, own_tpot = t["decoding"], t["own_tpot"]
    remaining = np.maximum(f["max_output_tokens"] - np.maximum(f["num_output_tokens"], 1), 0)
    start = np.where(decoding, np.maximum(t["slack"] - own_tpot, 0.0), deadline)
    end = np.where(decoding, t["end"], deadline + remaining * f["tpot_s"])
    end = np.maximum(end, start + remaining * own_tpot)  # behind schedule: at least this long
    end = np.where(remaining > 0, end, start)
    out_mid = (np.maximum(f["num_output_tokens"], 1) + f["max_output_tokens"]) / 2
    cost = predictor.decode_cost_array(
        f["num_prompt_tokens"] + out_mid, spec_len.astype(np.float64)
    )
    return {"start": start, "end": end, "load": cost / period, "cost": cost}


def _levels(
    period: FloatArray, predictor: StepTimePredictor, config: PlannerConfig
) -> tuple[FloatArray, IntArray]:
    """Cadence levels and each job's level; the last level means "no decoder active".

    A step lasts at most the tightest active period, and never longer than the idle step (the
    horizon, or a full token budget).
    """
    idle_s = min(config.horizon_s, predictor.isolated_prefill_s(config.max_num_batched_tokens))
    capped = np.minimum(period, idle_s)
    # A handful of distinct periods: a set finds them faster than `np.unique` here.
    levels = sorted(set(capped.tolist()))
    level = np.searchsorted(levels, capped)
    return np.array([*levels, idle_s], dtype=np.float64), level


def _deadline_overhead_s(base_s: float, longest_step_s: float) -> float:
    """Step overhead the fluid rate has not yet paid for in the step that ends at a deadline.

    That step lasts r >= base_s (it holds its own overhead) and no longer than the longest
    step, so the fluid share `base_s / p` (p <= longest_step_s) already charged
    `r * base_s / p >= base_s**2 / longest_step_s` of its overhead.
    """
    return base_s * max(0.0, 1.0 - base_s / longest_step_s)


def build_problem(
    now_s: float,
    running: Sequence[PlanRequest],
    waiting: Sequence[PlanRequest],
    predictor: StepTimePredictor,
    config: PlannerConfig,
) -> PlanningProblem:
    """Turn the engine's requests into the jobs of the fluid EDF model (see the module NOTE).

    Raises:
        ConfigError: two requests share a request_id.
    """
    reqs = [*running, *waiting]
    if len({r.request_id for r in reqs}) != len(reqs):
        raise ConfigError("planner: request_id values must be unique across running and waiting")
    f = _fields(reqs)
    f["tpot_s"] = f["tpot_s"] * (1.0 + config.tpot_tolerance)
    tiers_s = derive_tiers(f["tpot_s"], config.tier_margin_s, config.loosest_tier_extra_s)
    t = _timing(f, now_s, tiers_s, config)
    spec_by_tier = _spec_lengths(f, t["decoding"], t["tier"], tiers_s, predictor, config)
    period, spec_len = _periods(t["tier"], t["own_tpot"], spec_by_tier, config)
    p = _prefill(f, t, predictor)
    w = _decode_window(f, t, p["deadline"], period, spec_len, predictor)
    periods, level = _levels(period, predictor, config)
    # With speculation every step also runs the drafter, once per draft token of its longest
    # verify: part of the step overhead (conservative for steps without decoders).
    base_s = predictor.base_s + predictor.draft_s(int(spec_len.max(initial=1)) - 1)
    blocks = np.ceil((f["num_prompt_tokens"] + f["max_output_tokens"]) / config.block_size)
    order = np.lexsort((np.arange(len(reqs)), p["deadline"]))
    return PlanningProblem(
        requests=tuple(reqs[i] for i in order),
        tiers_s=tiers_s,
        spec_len_by_tier=spec_by_tier,
        is_old=t["is_old"][order],
        is_late=p["is_late"][order],
        is_decoding=t["decoding"][order],
        deadline_s=p["deadline"][order],
        work_s=p["work"][order],
        load_start_s=w["start"][order],
        load_end_s=w["end"][order],
        load=w["load"][order],
        decode_cost_s=w["cost"][order],
        level=level[order],
        periods_s=periods,
        num_blocks=blocks.astype(np.int64)[order],
        tier=t["tier"][order],
        slack_s=t["slack"][order],
        decode_period_s=period[order],
        tpot_s=f["tpot_s"][order],
        spec_len=spec_len[order],
        base_s=base_s,
        deadline_overhead_s=_deadline_overhead_s(base_s, float(periods[-1])),
        kv_blocks_total=config.kv_blocks_total,
        max_num_seqs=config.max_num_seqs,
    )

"""agentflow's scheduler inside vLLM's engine-core process: the SLO planner around vLLM's step.

`SLOSchedulerMixin` wraps vLLM's own scheduler and changes only what reference/
vllm_integration.md lists as safe per step: the step's token budget, the admission cap, the
order of the running list and the keys of the waiting heap. Everything it decides comes from
`agentflow.planner`: each step it plans over the running and waiting requests (through a
steady decode stretch it keeps the last plan, `SteadyPlanner`), admitted requests go first
in deadline order, and the rest form a best-effort lane that only gets the step's spare
tokens (and is preempted first when KV memory runs out). Nothing is dropped: a best-effort
request is still served, is reconsidered (promoted) every step, and the client learns its
lane through `RequestOutput.kv_transfer_params["agentflow_lane"]`.

Settings come from `additional_config["agentflow"]`: `planner` ("fast", "exact", or "none" for
deadline order only), `predictor` (a StepTimePredictor JSON), `trace_path` (JSON lines of
requests, plans and step times).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import IO, Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.request_queue import create_request_queue
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from agentflow.engine.vllm.config import ENGINE_TPOT_TOLERANCE, LANE_KEY
from agentflow.engine.vllm.planning import (
    BEST_EFFORT_PRIORITY_OFFSET,
    settings_for,
    to_plan_request,
)
from agentflow.engine.vllm.speculation import AcceptanceMeter, draft_limits, trim_drafts
from agentflow.planner import (
    PlannerConfig,
    PlanRequest,
    SpecConfig,
    SteadyPlanner,
    StepBound,
    StepPlan,
    StepSample,
    StepTimePredictor,
    chunk_context_tokens,
    demoted,
    jobs_to_shed,
    make_planner,
)

__all__ = [
    "RequestSLO",
    "SLOAsyncScheduler",
    "SLOScheduler",
    "SLOSchedulerMixin",
    "StepTimingMixin",
    "TracedAsyncScheduler",
    "TracedScheduler",
]

logger = logging.getLogger(__name__)

_DEFAULT_TTFT_MS = 10_000.0
_DEFAULT_TPOT_MS = 1_000.0
_MAX_STEPS_IN_FLIGHT = 4
_REPORT_SCALE_CHANGE = 1.25
"""The trace records the predictor's online scale when it moves by this factor."""
_WARN_SCALE = 2.0
"""Steps this many times slower or faster than the profile say warn once."""
ACCEPTANCE_STEP = 0.02
"""The planner's acceptance is updated once the measured one has moved this far from it."""


@dataclass(frozen=True, slots=True)
class RequestSLO:
    """The SLO one request carries into the scheduler."""

    ttft_ms: float
    tpot_ms: float
    program_id: str
    stage: str
    tier: str
    deadline_s: float
    """Wall-clock TTFT deadline: vLLM stamps `arrival_time` with `time.time()`."""

    @classmethod
    def from_request(cls, request: Request) -> RequestSLO:
        """Read the SLO from `extra_args`; requests without one get loose defaults."""
        params = request.sampling_params
        extra: dict[str, Any] = (params.extra_args or {}) if params is not None else {}
        ttft_ms = float(extra.get("ttft_ms", _DEFAULT_TTFT_MS))
        return cls(
            ttft_ms=ttft_ms,
            tpot_ms=float(extra.get("tpot_ms", _DEFAULT_TPOT_MS)),
            program_id=str(extra.get("program_id", "")),
            stage=str(extra.get("stage", "")),
            tier=str(extra.get("tier", "")),
            deadline_s=request.arrival_time + ttft_ms / 1e3,
        )


@dataclass(slots=True)
class _StepShape:
    """What one scheduled step contained, to be timed when its output comes back."""

    started_s: float
    num_prefill_tokens: int
    num_decode_reqs: int
    num_context_tokens: int
    num_prefill_pairs: int
    num_spec_tokens: int = 0
    """Draft tokens verified in the step (beyond each decode's own token)."""


class StepTimingMixin(Scheduler):
    """Times every step and writes it, with its shape, to an optional JSON-lines trace.

    A step is timed from schedule() to update_from_output(): the whole step on CPU, where
    scheduling is synchronous (the engine core's gap between steps measured 0.04 ms at p50 in
    serving). With async scheduling (GPU) the next step is planned while one runs, so a step's
    time starts at the later of its scheduling and the previous step's output. On its own
    (`TracedScheduler`) it changes no decision: stock vLLM, with step times a simulator can be
    checked against. Settings come from `additional_config["agentflow"]`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        additional = self.vllm_config.additional_config
        self._settings: dict[str, Any] = (
            additional.get("agentflow", {}) if isinstance(additional, dict) else {}
        )
        trace_path = self._settings.get("trace_path")
        # Line-buffered and held open for the engine's life; closed in shutdown().
        self._trace: IO[str] | None = (
            open(trace_path, "a", buffering=1) if trace_path else None  # noqa: SIM115
        )
        self._pending_steps: dict[int, _StepShape] = {}
        """id(SchedulerOutput) -> its shape, until its output comes back (two in flight when
        scheduling is async)."""
        self._last_output_s = float("-inf")

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        """Run the step's scheduling (`_schedule_step`) and remember its shape for timing."""
        started_s = time.monotonic()
        output = self._schedule_step(throttle_prefills)
        self._pending_steps[id(output)] = self._shape_of(output, started_s)
        while len(self._pending_steps) > _MAX_STEPS_IN_FLIGHT:  # an output never returned
            del self._pending_steps[next(iter(self._pending_steps))]
        return output

    def _schedule_step(self, throttle_prefills: bool) -> SchedulerOutput:
        return super().schedule(throttle_prefills)

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        """Time the step that just ran, then pass through.

        A step runs from its scheduling, or from the previous step's output if that came later
        (async scheduling plans a step while the one before it still runs), to its output.
        """
        step = self._pending_steps.pop(id(scheduler_output), None)
        now_s = time.monotonic()
        began_s, self._last_output_s = self._last_output_s, now_s
        if step is not None:
            elapsed_s = now_s - max(step.started_s, began_s)
            self._on_step_timed(
                StepSample(
                    step.num_prefill_tokens,
                    step.num_decode_reqs,
                    step.num_context_tokens,
                    step.num_spec_tokens,
                    elapsed_s,
                    step.num_prefill_pairs,
                )
            )
            self._write({"event": "step", **asdict(step), "step_ms": elapsed_s * 1e3})
        return super().update_from_output(scheduler_output, model_runner_output)

    def _on_step_timed(self, sample: StepSample) -> None:
        """Hook: a step was measured."""

    def shutdown(self) -> None:
        """Close the trace, then shut vLLM's scheduler down."""
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        super().shutdown()

    def _shape_of(self, output: SchedulerOutput, started_s: float) -> _StepShape:
        num_prefill = num_decode = num_context = num_pairs = 0
        for request_id, num_tokens in output.num_scheduled_tokens.items():
            request = self.requests[request_id]
            # `num_computed_tokens` was already advanced past this step's tokens.
            computed_before = request.num_computed_tokens - num_tokens
            if computed_before < request.num_prompt_tokens:
                num_prefill += num_tokens
                num_pairs += chunk_context_tokens(computed_before, num_tokens)
            else:
                num_decode += 1
                num_context += computed_before + 1
        num_spec = sum(len(drafts) for drafts in output.scheduled_spec_decode_tokens.values())
        return _StepShape(started_s, num_prefill, num_decode, num_context, num_pairs, num_spec)

    def _write(self, record: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace.write(json.dumps(record) + "\n")


class SLOSchedulerMixin(StepTimingMixin):
    """The planner around vLLM's scheduler, plus an optional trace of requests and steps.

    Typed as a `Scheduler` subclass so mypy sees the attributes it touches; the concrete classes
    below put it in front of `Scheduler` (CPU, sync) or `AsyncScheduler` (GPU).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self._settings
        predictor_json = settings.get("predictor")
        self.predictor = (
            StepTimePredictor.from_json(predictor_json)
            if predictor_json
            else StepTimePredictor.default_cpu()
        )
        self.planner_name: str = settings.get("planner", "fast")
        self.planner = make_planner(self.planner_name) if self.planner_name != "none" else None
        self._steady = SteadyPlanner(self.planner) if self.planner is not None else None
        self.planner_config = PlannerConfig(
            kv_blocks_total=max(1, self.kv_cache_config.num_blocks),
            block_size=self.block_size,
            max_num_batched_tokens=self.scheduler_config.max_num_batched_tokens,
            max_num_seqs=min(
                self.max_num_running_reqs, self.scheduler_config.max_num_batched_tokens
            ),
            planner=self.planner_name if self.planner_name != "none" else "fast",
            tpot_tolerance=float(settings.get("tpot_tolerance", ENGINE_TPOT_TOLERANCE)),
        )
        self._step_bound = StepBound(self.planner_config.horizon_s, 2 * self.predictor.base_s)
        self._step_config = self.planner_config
        """`planner_config` with the horizon bounded by recent arrivals (`_step_bound`)."""
        spec = self.vllm_config.speculative_config
        self._max_drafts: int = (spec.num_speculative_tokens or 0) if spec is not None else 0
        """Drafts vLLM's proposer makes per request and step (0: no speculation)."""
        self._acceptance: AcceptanceMeter | None = None
        self._last_verify_lengths: dict[str, int] = {}
        self._allowed_drafts: dict[int, dict[str, int]] = {}
        """id(SchedulerOutput) -> {request_id: drafts allowed} for the decoders of a step whose
        output has not come back yet (with async scheduling, two steps are in flight)."""
        if self._max_drafts and self.planner is not None:
            self._acceptance = AcceptanceMeter(
                prior=float(settings.get("spec_acceptance_prior", 0.5))
            )
            # A profile fitted without speculation has never seen a draft token; unpriced, the
            # planner would take drafts for free and always verify the longest.
            self.predictor = self.predictor.with_drafts_priced()
            self._use_acceptance(self._acceptance.alpha)
        self._reported_scale = self.predictor.scale
        self._warned_scale = False
        self._admitted_ids: frozenset[str] = frozenset()
        self._first_token_s: dict[str, float] = {}
        self._lane_by_id: dict[str, str] = {}
        self._lost_ids: set[str] = set()
        """Admitted requests whose SLO is already lost: best-effort from then on."""
        self._write(
            {
                "event": "start",
                "scheduler": type(self).__qualname__,
                "tpot_tolerance": self.planner_config.tpot_tolerance,
                "max_drafts": self._max_drafts,
                "dtype": str(self.vllm_config.model_config.dtype).removeprefix("torch."),
            }
        )

    def _use_acceptance(self, alpha: float) -> None:
        """Plan speculation with acceptance `alpha` from now on."""
        speculation = SpecConfig(max_spec_len=self._max_drafts + 1, alpha=alpha)
        self.planner_config = self.planner_config.model_copy(update={"speculation": speculation})
        self._step_config = self._step_bound.applied_to(self.planner_config)
        self._write({"event": "acceptance", "alpha": alpha})

    # ---------------------------------------------------------------- requests in
    def add_request(self, request: Request) -> None:
        """Attach the request's SLO and key the waiting heap by its TTFT deadline."""
        slo = RequestSLO.from_request(request)
        request.agentflow_slo = slo  # type: ignore[attr-defined]
        self._step_bound.observe(slo.ttft_ms / 1e3, slo.tpot_ms / 1e3)
        self._step_config = self._step_bound.applied_to(self.planner_config)
        # The priority heap orders by (priority, arrival): milliseconds of deadline make it EDF.
        request.priority = int(slo.deadline_s * 1e3)
        self._write({"event": "add", "request_id": request.request_id, **asdict(slo)})
        super().add_request(request)

    # ---------------------------------------------------------------- one step
    def _schedule_step(self, throttle_prefills: bool) -> SchedulerOutput:
        """Plan, apply the plan to vLLM's settings for one step, run vLLM's step, restore."""
        # Inside the timed step, so the step time the predictor learns includes planning and
        # vLLM's own scheduling: the planner budgets wall time, and on CPU these cost ~5 % of a
        # step.
        plan = self._plan_step() if self.planner is not None else None
        if plan is None:
            self.running.sort(key=_deadline_of)
            return super()._schedule_step(throttle_prefills)
        return self._schedule_with(plan, throttle_prefills)

    def _plan_step(self) -> StepPlan | None:
        assert self.planner is not None
        now_s = time.time()
        started_s = time.perf_counter()
        try:
            running = [self._plan_request(r, now_s) for r in self.running]
            waiting = [
                self._plan_request(r, now_s, self._cached_prefix_tokens(r)) for r in self.waiting
            ]
            config = self._step_config
            plan = self._plan_bounded(now_s, running, waiting)
            if plan.is_overloaded:
                # The admitted set no longer fits: give up what does not, rather than turn
                # every arrival away until it drains.
                shed = jobs_to_shed(now_s, running, waiting, self.predictor, config)
                if shed:
                    self._lost_ids.update(shed)
                    self._write({"event": "shed", "request_ids": list(shed)})
                    running = demoted(running, self._lost_ids)
                    waiting = demoted(waiting, self._lost_ids)
                    plan = self._plan_bounded(now_s, running, waiting)
        except Exception:  # a planner bug must not stall serving: fall back to EDF this step
            logger.exception("agentflow planner failed; serving this step in deadline order")
            return None
        self._admitted_ids = frozenset(plan.admitted_ids)
        if plan.newly_admitted_ids or plan.best_effort_ids:
            self._write(
                {
                    "event": "plan",
                    "admitted": len(plan.admitted_ids),
                    "new": list(plan.newly_admitted_ids),
                    "best_effort": list(plan.best_effort_ids),
                    "reasons": {k: str(v) for k, v in plan.reason_by_id.items()},
                    "token_budget": plan.token_budget,
                    "spare": plan.num_spare_tokens,
                    "plan_ms": (time.perf_counter() - started_s) * 1e3,
                }
            )
        return plan

    def _plan_bounded(
        self, now_s: float, running: list[PlanRequest], waiting: list[PlanRequest]
    ) -> StepPlan:
        assert self._steady is not None
        return self._steady.plan(
            now_s, running, waiting, self.predictor, self._step_config, self.planner_config
        )

    def _cached_prefix_tokens(self, request: Request) -> int:
        """Prompt tokens vLLM will take from its prefix cache when it schedules `request`.

        A follow-up stage whose prompt extends an earlier one finds most of it cached; priced
        as a whole new prompt it would be turned away for a TTFT it can meet. The lookup only
        reads the cache (no blocks are taken; vLLM repeats it when it schedules the request).
        """
        if request.num_computed_tokens:
            return 0
        _, num_tokens, _ = self.kv_cache_manager.get_computed_blocks(request)
        return int(num_tokens)

    def _plan_request(
        self, request: Request, now_s: float, num_cached_tokens: int = 0
    ) -> PlanRequest:
        """The planner's view of `request`; an admitted request whose SLO is lost is demoted.

        Deadline order alone would keep a request that already missed at the head of the
        queue (its deadline is the earliest), where it delays requests that can still make
        theirs: the domino effect of EDF under overload. Demoted, it is served from leftover
        capacity like any best-effort request.
        """
        slo: RequestSLO = request.agentflow_slo  # type: ignore[attr-defined]
        rid = request.request_id
        admitted = rid in self._admitted_ids and rid not in self._lost_ids
        plan_request = to_plan_request(
            request,
            ttft_s=slo.ttft_ms / 1e3,
            tpot_s=slo.tpot_ms / 1e3,
            first_token_s=self._first_token_s.get(rid),
            admitted=admitted,
            num_cached_tokens=num_cached_tokens,
        )
        if admitted and plan_request.has_missed(now_s):
            self._lost_ids.add(rid)
            self._write({"event": "lost", "request_id": rid})
            return replace(plan_request, is_admitted=False)
        return plan_request

    def _schedule_with(self, plan: StepPlan, throttle_prefills: bool) -> SchedulerOutput:
        # 1. Decide everything first, touching no scheduler state: a bug here must cost one
        #    step of deadline order, not the engine (vLLM treats a raise as fatal).
        try:
            limits = (
                draft_limits(plan, (r.request_id for r in self.running), self._max_drafts)
                if self._max_drafts
                else {}
            )
            settings = settings_for(
                plan,
                running=self.running,
                predictor=self.predictor,
                max_spare_step_s=self._tightest_tpot_s(),
                max_tokens_cap=self.scheduler_config.max_num_batched_tokens,
                draft_limits=limits,
            )
            hidden = [r for r in self.running if r.request_id in settings.hidden_ids]
        except Exception:
            logger.exception("agentflow plan could not be applied; serving in deadline order")
            self.running.sort(key=_deadline_of)
            return super()._schedule_step(throttle_prefills)
        # 2. Apply it for this step only.
        saved_budget, saved_active = self.max_num_scheduled_tokens, self.max_num_active_reqs
        self._rekey_waiting(settings.admitted_ids)
        ranks = settings.decode_rank_by_id
        self.running = [r for r in self.running if r.request_id not in settings.hidden_ids]
        self.running.sort(key=lambda r: (ranks.get(r.request_id, 1 << 30), _deadline_of(r)))
        self.max_num_scheduled_tokens = settings.token_budget
        if limits:
            self._trace_verify_lengths(plan)
            trim_drafts(self.running, limits)
        # Hidden requests still hold a running slot: count them against the engine's cap. The
        # plan's batch size is not imposed: best-effort requests need slots too.
        self.max_num_active_reqs = max(0, saved_active - len(hidden))
        try:
            output = super()._schedule_step(throttle_prefills)
        finally:
            self.running.extend(hidden)
            self.max_num_scheduled_tokens, self.max_num_active_reqs = saved_budget, saved_active
        if settings.verify_limits and self._acceptance is not None:
            self._allowed_drafts[id(output)] = settings.verify_limits
            while len(self._allowed_drafts) > _MAX_STEPS_IN_FLIGHT:  # an output never returned
                del self._allowed_drafts[next(iter(self._allowed_drafts))]
        return output

    def _trace_verify_lengths(self, plan: StepPlan) -> None:
        """Write the per-tier verify lengths to the trace when they change."""
        lengths = {
            f"{tier_s * 1e3:.0f}ms": plan.spec_len_by_tier.get(k, 1)
            for k, tier_s in enumerate(plan.tpot_tiers_s)
        }
        if lengths != self._last_verify_lengths:
            self._last_verify_lengths = lengths
            self._write({"event": "verify", "spec_len_by_tier": lengths})

    def _rekey_waiting(self, admitted_ids: frozenset[str]) -> None:
        """Rebuild the waiting heap: admitted by deadline, best-effort after all of them."""
        waiting = list(self.waiting)
        self.waiting = create_request_queue(self.policy)
        for request in waiting:
            key = int(_deadline_of(request) * 1e3)
            admitted = request.request_id in admitted_ids
            request.priority = key if admitted else key + BEST_EFFORT_PRIORITY_OFFSET
            self.waiting.add_request(request)

    def _tightest_tpot_s(self) -> float:
        """The tightest TPOT among the requests in the engine: spare work stays within it."""
        requests = (*self.running, *self.waiting)
        return min((_tpot_ms_of(r) for r in requests), default=_DEFAULT_TPOT_MS) / 1e3

    # ---------------------------------------------------------------- step done
    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        """Time the step (refining the predictor), pass through, record first tokens and lanes."""
        now_s = time.time()
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        for engine_outputs in outputs.values():
            for out in engine_outputs.outputs:
                self._tag_lane(out, now_s)
        allowed = self._allowed_drafts.pop(id(scheduler_output), None)
        if allowed:
            try:
                self._measure_acceptance(scheduler_output, allowed, outputs)
            except Exception:  # vLLM treats a raise here as fatal: lose a measurement instead
                logger.exception("agentflow could not measure speculation acceptance")
        return outputs

    def _measure_acceptance(
        self, scheduler_output: Any, allowed: dict[str, int], outputs: dict[int, Any]
    ) -> None:
        """Feed the meter one verify per decoder the step allowed drafts (none held: a miss)."""
        assert self._acceptance is not None
        num_new_by_id = {
            out.request_id: len(out.new_token_ids)
            for engine_outputs in outputs.values()
            for out in engine_outputs.outputs
        }
        scheduled = scheduler_output.num_scheduled_tokens
        for rid, num_allowed in allowed.items():
            if rid in scheduled and rid in num_new_by_id:
                self._acceptance.observe(num_allowed, num_new_by_id[rid] - 1)
        alpha = self._acceptance.alpha
        planned = self.planner_config.speculation
        if planned is not None and abs(alpha - planned.alpha) >= ACCEPTANCE_STEP:
            self._use_acceptance(alpha)

    def _on_step_timed(self, sample: StepSample) -> None:
        if sample.num_prefill_tokens + sample.num_decode_reqs == 0:
            return  # nothing ran (vLLM skips the model): not a step the profile describes
        self.predictor.observe(sample)
        scale = self.predictor.scale
        if abs(math.log(scale / self._reported_scale)) < math.log(_REPORT_SCALE_CHANGE):
            return
        self._reported_scale = scale
        # The shortest step the planner may plan is two empty steps: at the measured speed.
        self._step_bound.set_min_step(2 * self.predictor.base_s)
        self._write(
            {"event": "recalibrated", "scale": scale, "bias_ms": self.predictor.bias_s * 1e3}
        )
        if not self._warned_scale and abs(math.log(scale)) > math.log(_WARN_SCALE):
            self._warned_scale = True
            logger.warning(
                "agentflow: engine steps take %.1fx what the step-time profile predicts; the"
                " planner now uses the measured speed. If this machine is not shared and the"
                " profile is from another one, rerun `agentflow profile`.",
                scale,
            )

    def _tag_lane(self, out: Any, now_s: float) -> None:
        rid = out.request_id
        if out.new_token_ids and rid not in self._lane_by_id:
            self._first_token_s[rid] = now_s
            # The lane is the promise in force when serving began: admitted at first token.
            admitted = self.planner is None or rid in self._admitted_ids
            self._lane_by_id[rid] = "admitted" if admitted else "best_effort"
        lane = self._lane_by_id.get(rid)
        if lane is not None and out.kv_transfer_params is None:
            out.kv_transfer_params = {LANE_KEY: lane}
        if out.finish_reason is not None:
            self._first_token_s.pop(rid, None)
            self._lane_by_id.pop(rid, None)
            self._lost_ids.discard(rid)


def _tpot_ms_of(request: Request) -> float:
    slo: RequestSLO | None = getattr(request, "agentflow_slo", None)
    return slo.tpot_ms if slo is not None else _DEFAULT_TPOT_MS


def _deadline_of(request: Request) -> float:
    slo: RequestSLO | None = getattr(request, "agentflow_slo", None)
    return slo.deadline_s if slo is not None else float("inf")


class TracedScheduler(StepTimingMixin, Scheduler):
    """Stock vLLM scheduling, with each step's shape and time in the trace (sim_vs_real)."""


class TracedAsyncScheduler(StepTimingMixin, AsyncScheduler):
    """`TracedScheduler` for engines with async scheduling (GPU)."""


class SLOScheduler(SLOSchedulerMixin, Scheduler):
    """For synchronous engines (the CPU backend forces async scheduling off)."""


class SLOAsyncScheduler(SLOSchedulerMixin, AsyncScheduler):
    """For engines with async scheduling (GPU)."""

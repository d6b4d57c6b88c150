"""agentflow's policy in the simulator: the SLO planner decides each step.

Each step the planner (`agentflow.planner.plan`) sees the running and waiting requests and
returns the admitted set, the decodes that must run, the admitted prefill chunks (EDF) and the
spare tokens left in the step's time budget. The batch is laid out in that order:

1. the plan's decodes of admitted requests: the must-run ones (their token interval opens
   before the step ends), and the ahead-of-schedule ones the plan lets ride along;
2. the planned prefill chunks of admitted requests;
3. spare tokens, capped so the step ends by the plan's time budget (the earliest decode
   deadline) and within the workload's tightest TPOT: first the other ahead-of-schedule
   admitted decoders (a request that runs ahead of its TPOT leaves sooner and frees its KV
   reservation; pacing decoders at exactly their TPOT doubled the admitted requests' KV
   residence and made the planner decline for memory), then the best-effort lane: running
   decodes, partial prefills, then waiting requests by arrival.
   A best-effort request that could still be admitted is prefilled up to its last token
   only: its first token, which fixes its lane, waits for the planner's verdict.

With speculation on, every admitted decode verifies its planning tier's length (the plan's
`spec_len_by_tier`); best-effort decodes verify one token.

KV for admitted work may preempt best-effort requests (youngest first) by recompute, never the
other way round. A request's lane is fixed at its first token: admitted if the plan in force
admitted it, else best-effort. Waiting best-effort requests are re-offered to the planner
every step until their TTFT deadline passes, so they are promoted as soon as they fit; late
ones stay best-effort without costing planner time. An admitted request whose SLO is already
lost is demoted, an infeasible admitted set is cut back (`jobs_to_shed`) and re-planned, and
the planned step is bounded by the budgets of recent arrivals (`StepBound`) unless a longer
one admits more (`plan_within_bound`). Through a steady decode stretch (nothing waiting, every
running request an admitted decoder) the last plan is reused for up to
`PlannerConfig.max_plan_reuses` steps (`SteadyPlanner`). This mirrors the vLLM scheduler mixin
in `agentflow.engine.vllm.scheduler`, which applies the same plan inside vLLM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agentflow.engine.sim.instance import Batch, Instance
from agentflow.engine.sim.policies.fcfs import room_for
from agentflow.engine.sim.request import SimRequest
from agentflow.planner import (
    Planner,
    PlannerConfig,
    PlanRequest,
    SpareBudget,
    SteadyPlanner,
    StepBound,
    StepPlan,
    StepTimePredictor,
    chunk_context_tokens,
    demoted,
    jobs_to_shed,
    spare_step_limit_s,
)

__all__ = ["AgentflowPolicy", "to_plan_request"]


def to_plan_request(request: SimRequest, num_cached_tokens: int = 0) -> PlanRequest:
    """The planner's view of one simulated request.

    `num_cached_tokens`: prompt tokens a waiting request will take from the prefix cache when
    it starts (they cost no prefill work).
    """
    if request.is_decoding:
        num_prompt = num_computed = request.num_prompt_tokens
    else:  # first prefill, or a recompute of prompt + generated tokens
        num_prompt = request.num_prefill_target
        num_computed = max(request.num_computed, num_cached_tokens)
    return PlanRequest(
        request_id=request.request_id,
        arrival_s=request.arrival_s,
        ttft_s=request.ttft_s,
        tpot_s=request.tpot_s,
        num_prompt_tokens=num_prompt,
        num_computed_tokens=num_computed,
        num_output_tokens=request.num_generated,
        max_output_tokens=request.num_output_tokens,
        first_token_s=request.first_token_s,
        is_admitted=request.is_admitted,
    )


class _Layout:
    """Builds one batch from a plan, reserving KV as it goes."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.decodes: list[SimRequest] = []
        self.spec_lens: list[int] = []
        self.chunks: list[tuple[SimRequest, int]] = []
        self.scheduled: set[int] = set()
        """id() of requests in the batch, and of this step's preemption victims."""
        self.waiting_ids = {id(r) for r in instance.waiting}
        # The engine's cap, not `plan.max_batch_size`: that one counts only the requests the
        # planner saw, and late best-effort requests are not shown to it.
        self.seats = instance.limits.max_num_seqs
        self.num_seated = 0

    def _reserve(self, request: SimRequest, num_tokens: int, *, may_preempt: bool) -> bool:
        inst = self.instance
        while not inst.reserve(request, num_tokens):
            if not may_preempt:
                return False
            victim = self._victim(request)
            if victim is None:
                return False
            inst.preempt(victim)
            self.scheduled.add(id(victim))  # not rescheduled in the step that preempted it
            self.waiting_ids.add(id(victim))
        return True

    def _victim(self, requester: SimRequest) -> SimRequest | None:
        """Youngest best-effort request not in this batch.

        An admitted requester may take any best-effort request's blocks; a best-effort one
        only those of best-effort requests younger than itself (vLLM's order among them).
        """
        for request in reversed(self.instance.running):
            if request is requester:
                if not requester.is_admitted:
                    return None
                continue
            if not request.is_admitted and id(request) not in self.scheduled:
                return request
        return None

    def _take(self, request: SimRequest) -> None:
        if id(request) in self.waiting_ids:
            self.instance.start(request)
            self.waiting_ids.discard(id(request))
        self.scheduled.add(id(request))
        self.num_seated += 1

    def decode(self, request: SimRequest, *, may_preempt: bool, spec_len: int = 1) -> bool:
        """Add a decode of `request` (verifying `spec_len` tokens) if a seat and KV are free."""
        if self.num_seated >= self.seats or id(request) in self.scheduled:
            return False
        if not self._reserve(request, request.num_computed + spec_len, may_preempt=may_preempt):
            return False
        self._take(request)
        self.decodes.append(request)
        self.spec_lens.append(spec_len)
        return True

    def prefill(
        self, request: SimRequest, num_tokens: int, *, may_preempt: bool, hold_first: bool = False
    ) -> int:
        """Add a prefill chunk of at most `num_tokens`; returns the tokens actually placed.

        `hold_first`: stop one token short of the end, so the first token is not sampled yet.
        """
        if self.num_seated >= self.seats or id(request) in self.scheduled:
            return 0
        if id(request) in self.waiting_ids:
            self.instance.claim_cached_prefix(request)
        n = min(num_tokens, request.num_remaining_prefill - int(hold_first))
        if not may_preempt:
            n = min(n, room_for(self.instance, request))
        if n <= 0 or not self._reserve(request, request.num_computed + n, may_preempt=may_preempt):
            self.instance.release_cached_prefix(request)
            return 0
        self._take(request)
        self.chunks.append((request, n))
        return n

    def is_scheduled(self, request: SimRequest) -> bool:
        """Whether `request` is in the batch already (or was preempted for it)."""
        return id(request) in self.scheduled

    def batch(self) -> Batch:
        spec_lens = tuple(self.spec_lens) if any(n > 1 for n in self.spec_lens) else ()
        return Batch(tuple(self.decodes), tuple(self.chunks), spec_lens)


def _is_candidate(request: SimRequest, now_s: float) -> bool:
    """Whether the planner should see `request`.

    Admitted requests always; best-effort ones only before their first token and while their
    TTFT can still be met. Once a token came in the best-effort lane the request is a miss
    whatever happens next, so promoting it would only spend guaranteed capacity on it.
    """
    if request.is_admitted:
        return True
    return request.lane is None and request.arrival_s + request.ttft_s > now_s


def _next_token_due_s(request: SimRequest) -> float:
    """When the request's next token is due under the SLO (decode credit from the TTFT)."""
    origin_s = request.arrival_s + request.ttft_s
    if request.num_generated == 0:
        return origin_s
    if request.first_token_s is not None:
        origin_s = max(origin_s, request.first_token_s)
    return origin_s + request.num_generated * request.tpot_s


class AgentflowPolicy:
    """Per-step SLO planning with admission control and a best-effort lane.

    Args:
        planner: the planner object (`agentflow.planner.make_planner("fast")`).
        predictor: the planner's step-time model (may differ from the instance's true one).
        config: the planner's view of the engine's limits.
        max_spare_step_s: spare work never stretches a step past this (the workload's tightest
            TPOT). The plan's budget runs to the earliest admitted decode deadline, up to the
            planning horizon when nothing decodes; filling all of it with best-effort work would
            make a request arriving meanwhile wait that long for its first chunk.
    """

    name = "agentflow"
    has_admission_control = True

    def __init__(
        self,
        planner: Planner,
        predictor: StepTimePredictor,
        config: PlannerConfig,
        max_spare_step_s: float = 0.05,
    ) -> None:
        self.planner = planner
        self.predictor = predictor
        self.config = config
        self.max_spare_step_s = max_spare_step_s
        self.num_plans = 0
        self._steady = SteadyPlanner(planner)
        self._step_bound = StepBound(config.horizon_s, 2 * predictor.base_s)
        self._step_config = config
        self._last_arrival_s = float("-inf")

    def schedule(self, instance: Instance, now_s: float) -> Batch:
        """Plan, then lay the batch out as the module docstring describes."""
        running = list(instance.running)
        waiting = list(instance.waiting)
        self._observe_arrivals(waiting)
        by_id = {r.request_id: r for r in (*running, *waiting)}
        # One view per candidate per step, reused by every plan of the step: building them was
        # a fifth of the simulator's time.
        jobs = (
            self._views(instance, running, now_s, is_waiting=False),
            self._views(instance, waiting, now_s, is_waiting=True),
        )
        plan = self._plan(now_s, jobs)
        if plan.is_overloaded:
            shed = set(jobs_to_shed(now_s, *jobs, self.predictor, self._step_config))
            for rid in shed:
                by_id[rid].is_admitted = False
            if shed:
                jobs = (demoted(jobs[0], shed), demoted(jobs[1], shed))
                plan = self._plan(now_s, jobs)
        self.num_plans += 1
        admitted = set(plan.admitted_ids)
        for request in by_id.values():
            request.is_admitted = request.request_id in admitted
        layout = _Layout(instance)

        def spec_len(request: SimRequest) -> int:
            """The plan's verify length for an admitted decoder's tier (1: no speculation)."""
            tier = plan.tier_by_id.get(request.request_id)
            return 1 if tier is None else plan.spec_len_by_tier.get(tier, 1)

        for rid in plan.decode_ids:
            layout.decode(by_id[rid], may_preempt=True, spec_len=spec_len(by_id[rid]))
        for rid, n in plan.prefill_tokens_by_id.items():
            layout.prefill(by_id[rid], n, may_preempt=True)
        self._fill_spare(layout, running, waiting, now_s, spec_len, plan)
        return layout.batch()

    def _observe_arrivals(self, waiting: list[SimRequest]) -> None:
        """Feed requests that arrived since the last step to the step bound."""
        newest_s = self._last_arrival_s
        for request in reversed(waiting):  # arrivals are appended at the back
            if request.arrival_s <= self._last_arrival_s:
                break
            self._step_bound.observe(request.ttft_s, request.tpot_s)
            newest_s = max(newest_s, request.arrival_s)
        self._last_arrival_s = newest_s
        self._step_config = self._step_bound.applied_to(self.config)

    @staticmethod
    def _views(
        instance: Instance, requests: list[SimRequest], now_s: float, *, is_waiting: bool
    ) -> list[PlanRequest]:
        """The planner's views of the candidates among `requests` (running or waiting).

        An admitted request whose SLO is lost already is demoted first: no priority for it any
        more (the vLLM mixin does the same). It is no candidate either: its first token is
        overdue, or came already and fixed its lane.
        """
        views = []
        for request in requests:
            if not _is_candidate(request, now_s):
                continue
            cached = instance.cached_prefix_tokens(request) if is_waiting else 0
            view = to_plan_request(request, cached)
            if request.is_admitted and view.has_missed(now_s):
                request.is_admitted = False
                continue
            views.append(view)
        return views

    def _plan(self, now_s: float, jobs: tuple[list[PlanRequest], list[PlanRequest]]) -> StepPlan:
        return self._steady.plan(now_s, *jobs, self.predictor, self._step_config, self.config)

    def _spare_budget(self, layout: _Layout, plan: StepPlan) -> SpareBudget:
        """What spare work may still add before the step reaches its limit.

        The limit is the spare limit, and never past the plan's budget (the earliest admitted
        decode deadline).
        """
        num_drafts = sum(layout.spec_lens) - len(layout.spec_lens)
        return SpareBudget(
            self.predictor,
            spare_step_limit_s(self.predictor, self.max_spare_step_s, plan.step_time_budget_s),
            plan.num_spare_tokens,
            num_decodes=len(layout.decodes),
            num_context_tokens=sum(r.num_computed + 1 for r in layout.decodes),
            num_spec_tokens=num_drafts,
            num_prefill_tokens=sum(n for _, n in layout.chunks),
            num_prefill_pairs=sum(
                chunk_context_tokens(r.num_computed, n) for r, n in layout.chunks
            ),
        )

    def _fill_spare(
        self,
        layout: _Layout,
        running: list[SimRequest],
        waiting: Iterable[SimRequest],
        now_s: float,
        spec_len: Callable[[SimRequest], int],
        plan: StepPlan,
    ) -> None:
        """Spend the spare tokens: ahead-of-schedule admitted decoders, then best-effort."""
        spare = self._spare_budget(layout, plan)
        ahead = [r for r in running if r.is_admitted and r.is_decoding]
        ahead.sort(key=_next_token_due_s)
        for request in ahead:
            context = request.num_computed + 1
            if layout.is_scheduled(request):
                continue
            num_verified = spec_len(request)
            if not spare.fits_decode(context, num_drafts=num_verified - 1):
                break
            if layout.decode(request, may_preempt=False, spec_len=num_verified):
                spare.add_decode(context, num_drafts=num_verified - 1)
        for request in running:
            if not request.is_admitted and request.is_decoding:
                context = request.num_computed + 1
                if not spare.fits_decode(context):
                    break
                if layout.decode(request, may_preempt=True):
                    spare.add_decode(context)
        for request in (*running, *waiting):
            if request.is_admitted or request.is_decoding:
                continue
            num_tokens = spare.prefill_tokens()
            if num_tokens <= 0:
                return
            # Still promotable: prefill all but the last token, so that the first token (which
            # fixes the lane) waits for the planner to admit it or give up.
            hold = _is_candidate(request, now_s)
            spare.add_prefill(
                layout.prefill(request, num_tokens, may_preempt=False, hold_first=hold)
            )

"""The router on the simulator's fast path: capacity of N replicas under each routing policy.

Capacity search needs thousands of simulated requests per probe, so it runs the router
in-process on the simulator's event loop (`agentflow.engine.sim.Simulation`) instead of on
Ray actors: the replicas are the simulator's `Instance`s of the agentflow policy (the same
engines for every routing policy), and `RoutedDeployment` replaces the simulator's
round-robin entry with a `RoutingPolicy`. The routing logic is the pool's: admission asked of
each replica's own planner (`SimReplicaView.can_admit`), program affinity, and the central
best-effort lane (requests no replica can admit or has best-effort room for wait here and are
re-offered whenever a request finishes or starts). The replica still decides admission
itself at its next step, among everything it holds (its planner can then prefer two short
prompts to one long one, which binding the router's arrival-order answer would forbid).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agentflow.cluster.activity import ProgramActivity
from agentflow.cluster.routing import Route, RoutingPolicy, make_routing_policy
from agentflow.engine.sim import (
    AgentflowPolicy,
    Deployment,
    FinishReason,
    Instance,
    Lane,
    PolicyOptions,
    Progress,
    RequestOutcome,
    RequestSpec,
    SimProfile,
    SimRequest,
    Simulation,
    StopRule,
    make_deployment,
)
from agentflow.engine.sim.policies import to_plan_request
from agentflow.errors import ConfigError
from agentflow.planner import PlanRequest
from agentflow.workloads import (
    CapacityResult,
    CapacitySettings,
    ProbeResult,
    Scenario,
    bisect_capacity,
    build_trace,
    get_scenario,
    score,
)
from agentflow.workloads.capacity import policy_options_for

__all__ = [
    "RoutedDeployment",
    "RoutedRun",
    "SimReplicaView",
    "find_routed_capacity",
    "make_routed_deployment",
    "simulate_routed",
]


class SimReplicaView:
    """One simulated agentflow instance as a routing policy sees it (its true state).

    Args:
        replica_id: index in the deployment.
        instance: an instance whose policy is `AgentflowPolicy` (for `can_admit`).
    """

    is_alive = True

    def __init__(
        self,
        replica_id: int,
        instance: Instance,
        routing: dict[str, SimRequest] | None = None,
    ) -> None:
        if not isinstance(instance.policy, AgentflowPolicy):
            raise ConfigError("routed simulation: replicas must run the agentflow policy")
        self.replica_id = replica_id
        self.instance = instance
        self.policy: AgentflowPolicy = instance.policy
        self.num_plans = 0
        self._routing = routing if routing is not None else {}
        """The requests being routed, by id (to price their prefix-cache hits here)."""
        self.activity = ProgramActivity()
        """Programs served here now or between their rounds (fed by `RoutedDeployment`)."""

    def num_active_programs(self, now_s: float) -> int:
        """Programs with a request here, or between rounds here (`ProgramActivity`)."""
        return self.activity.num_active(now_s)

    @property
    def num_in_flight(self) -> int:
        """Requests queued or running on the instance."""
        return len(self.instance.running) + len(self.instance.waiting)

    @property
    def num_waiting_best_effort(self) -> int:
        """Requests here that are not admitted and have no token yet."""
        inst = self.instance
        return sum(
            1 for r in (*inst.running, *inst.waiting) if not r.is_admitted and r.lane is None
        )

    def can_admit(self, candidate: PlanRequest, now_s: float) -> bool:
        """Whether the instance's own planner admits `candidate` beside its requests now."""
        if candidate.prefill_deadline_s <= now_s:
            return False
        inst, policy = self.instance, self.policy
        config = policy.config
        admitted = [r for r in (*inst.running, *inst.waiting) if r.is_admitted]
        if len(admitted) >= config.max_num_seqs:
            return False
        block = config.block_size
        blocks = sum(-(-(r.num_prompt_tokens + r.num_output_tokens) // block) for r in admitted)
        if blocks + candidate.num_kv_blocks(block) > config.kv_blocks_total:
            return False
        # New work starts when the step in flight ends: plan from then (as the replica will).
        start_s = max(now_s, inst.step.end_s) if inst.step is not None else now_s
        running = [to_plan_request(r) for r in inst.running if _is_candidate(r, start_s)]
        waiting = [
            to_plan_request(r, inst.cached_prefix_tokens(r))
            for r in inst.waiting
            if _is_candidate(r, start_s)
        ]
        routed = self._routing.get(candidate.request_id)
        if routed is not None:  # a follow-up may find its parent's KV cached here
            candidate = to_plan_request(routed, inst.cached_prefix_tokens(routed))
        waiting.append(candidate)
        plan = policy.planner.plan(start_s, running, waiting, policy.predictor, config)
        self.num_plans += 1
        return candidate.request_id in plan.admitted_ids


def _program_of(request: SimRequest) -> str:
    return request.program_id or request.request_id


def _is_candidate(request: SimRequest, now_s: float) -> bool:
    """The requests the instance's planner sees (as `AgentflowPolicy` filters them)."""
    if request.is_admitted:
        return True
    return request.lane is None and request.arrival_s + request.ttft_s > now_s


def _plan_request(request: SimRequest) -> PlanRequest:
    """A new request as a routing candidate."""
    return PlanRequest(
        request_id=request.request_id,
        arrival_s=request.arrival_s,
        ttft_s=request.ttft_s,
        tpot_s=request.tpot_s,
        num_prompt_tokens=request.num_prompt_tokens,
        num_computed_tokens=0,
        num_output_tokens=0,
        max_output_tokens=request.num_output_tokens,
    )


class RoutedDeployment(Deployment):
    """Simulated replicas behind a routing policy and a central best-effort lane.

    Args:
        instances: the replicas (agentflow policy).
        policy: the routing policy.
        max_waiting_best_effort: as `Router.max_waiting_best_effort` (>= 1).
        max_admission_checks: waiting requests re-checked for admission per lane pass.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        policy: RoutingPolicy,
        *,
        max_waiting_best_effort: int = 2,
        max_admission_checks: int = 8,
    ) -> None:
        if max_waiting_best_effort < 1:
            raise ConfigError("routed simulation: max_waiting_best_effort must be >= 1")
        super().__init__(f"agentflow+{policy.name}", instances)
        self.policy = policy
        self._routing: dict[str, SimRequest] = {}
        self.views = [SimReplicaView(i, inst, self._routing) for i, inst in enumerate(instances)]
        self.max_waiting_best_effort = max_waiting_best_effort
        self.max_admission_checks = max_admission_checks
        self.held: list[SimRequest] = []
        """The central best-effort lane, oldest first."""
        self._replica_by_program: dict[str, int] = {}
        self._replica_by_request: dict[str, int] = {}
        """request_id -> the replica it was placed on, until it finishes."""
        self._is_dirty = False
        self.num_by_lane = {Lane.ADMITTED: 0, Lane.BEST_EFFORT: 0}
        self.num_promoted = self.num_affinity = 0

    def add(self, request: SimRequest, now_s: float) -> bool:
        """Route a new request; False (finished as too large) if it never fits."""
        if not self.entry[0].can_ever_fit(request):
            request.finish_reason = FinishReason.TOO_LARGE
            return False
        route = self._propose(request, now_s)
        if route.lane is Lane.BEST_EFFORT and (self.held or self._is_backed_up(route)):
            self.held.append(request)
        else:
            self._place(request, route, now_s)
        return True

    def abort(self, request: SimRequest) -> None:
        """Drop a request, also from the central lane."""
        if request in self.held:
            self.held.remove(request)
            request.finish_reason = FinishReason.ABORTED
            return
        replica_id = self._replica_by_request.pop(request.request_id, None)
        if replica_id is not None:  # cancelled: its program is not expected back
            self.views[replica_id].activity.ended(_program_of(request), float("-inf"))
        super().abort(request)

    def end_program(self, program_id: str, now_s: float) -> None:
        """As `Router.end_program`: forget the program's affinity and activity."""
        del now_s
        self._replica_by_program.pop(program_id, None)
        for view in self.views:
            view.activity.program_ended(program_id)

    @property
    def has_work(self) -> bool:
        """Anything held, queued, running or in transfer."""
        return bool(self.held) or super().has_work

    def advance(self, now_s: float) -> Progress:
        """Finish due steps; a finish or a first token re-opens the central lane."""
        progress = super().advance(now_s)
        for request in progress.finished:
            replica_id = self._replica_by_request.pop(request.request_id, None)
            if replica_id is not None:
                self.views[replica_id].activity.ended(_program_of(request), now_s)
        if progress.finished or any(r.num_generated == 1 for r in progress.emitted):
            self._is_dirty = True
        return progress

    def begin_steps(self, now_s: float) -> None:
        """Re-offer the central lane if something changed, then start idle instances."""
        if self.held and self._is_dirty:
            self._drain(now_s)
        self._is_dirty = False
        super().begin_steps(now_s)

    # -- routing -----------------------------------------------------------------------------

    def _propose(self, request: SimRequest, now_s: float) -> Route:
        preferred = self._replica_by_program.get(request.program_id)
        self._routing[request.request_id] = request
        try:
            return self.policy.choose(
                _plan_request(request), self.views, now_s, preferred_id=preferred
            )
        finally:
            del self._routing[request.request_id]

    def _is_backed_up(self, route: Route) -> bool:
        backlog = self.views[route.replica_id].num_waiting_best_effort
        return backlog >= self.max_waiting_best_effort

    def _place(
        self, request: SimRequest, route: Route, now_s: float, *, is_promotion: bool = False
    ) -> None:
        instance = self.entry[route.replica_id]
        instance.add(request)
        self._replica_by_request[request.request_id] = route.replica_id
        self.views[route.replica_id].activity.dispatched(_program_of(request), now_s)
        if route.lane is not None:
            self.num_by_lane[route.lane] += 1
        self.num_promoted += is_promotion
        self.num_affinity += route.is_affinity
        self.owner_by_id[request.request_id] = instance
        if request.program_id:
            self._replica_by_program[request.program_id] = route.replica_id

    def _drain(self, now_s: float) -> None:
        num_checks = 0
        for request in list(self.held):
            if request.arrival_s + request.ttft_s > now_s:
                if num_checks >= self.max_admission_checks:
                    continue
                num_checks += 1
            route = self._propose(request, now_s)
            if route.lane is not Lane.BEST_EFFORT or not self._is_backed_up(route):
                self.held.remove(request)
                self._place(request, route, now_s, is_promotion=route.lane is Lane.ADMITTED)


def make_routed_deployment(
    routing: str,
    profile: SimProfile,
    options: PolicyOptions,
    *,
    max_waiting_best_effort: int = 2,
) -> RoutedDeployment:
    """`options.num_replicas` agentflow instances of `profile` behind `routing`.

    Raises:
        ConfigError: unknown routing policy.
    """
    instances = make_deployment("agentflow", profile, options).entry
    return RoutedDeployment(
        instances,
        make_routing_policy(routing),
        max_waiting_best_effort=max_waiting_best_effort,
    )


@dataclass(frozen=True, slots=True)
class RoutedRun:
    """Outcomes of one routed simulation, and what the router did."""

    outcomes: list[RequestOutcome]
    num_admitted_routes: int
    num_best_effort_routes: int
    num_promoted: int
    num_affinity: int
    num_plans: int
    """Planner calls made by routing (not by the replicas' own scheduling)."""
    is_stopped_early: bool


def simulate_routed(
    trace: Sequence[RequestSpec],
    routing: str,
    profile: SimProfile,
    options: PolicyOptions,
    *,
    target: float = 0.9,
    early_stop: bool = True,
) -> RoutedRun:
    """Run `trace` on `options.num_replicas` routed replicas.

    Args:
        trace: the requests (see `agentflow.workloads.build_trace`).
        routing: "agentflow", "round_robin" or "least_loaded".
        profile: the replicas' simulator profile.
        options: policy options; `num_replicas` sets the pool size.
        target: attainment a capacity probe must exceed.
        early_stop: stop once more programs missed than `target` allows (capacity search).
    """
    num_programs = len({s.program_id or s.request_id for s in trace})
    max_missed = math.floor(num_programs * (1 - target)) if early_stop else None
    deployment = make_routed_deployment(routing, profile, options)
    simulation = Simulation(trace, deployment, StopRule(max_missed_programs=max_missed))
    outcomes = simulation.run()
    return RoutedRun(
        outcomes=outcomes,
        num_admitted_routes=deployment.num_by_lane[Lane.ADMITTED],
        num_best_effort_routes=deployment.num_by_lane[Lane.BEST_EFFORT],
        num_promoted=deployment.num_promoted,
        num_affinity=deployment.num_affinity,
        num_plans=sum(v.num_plans for v in deployment.views),
        is_stopped_early=max_missed is not None and len(simulation.missed_programs) > max_missed,
    )


def find_routed_capacity(
    scenario: Scenario | str,
    routing: str,
    profile: SimProfile,
    settings: CapacitySettings | None = None,
) -> CapacityResult:
    """Capacity of `settings.num_replicas` routed agentflow replicas (as `find_capacity`).

    The same method as `agentflow.workloads.find_capacity` (time-scaled arrivals of one
    window, > target attainment and drained, bisected), with `routing` in front of the
    replicas instead of the simulator's round robin.
    """
    settings = settings or CapacitySettings()
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    predictor = profile.predictor()
    options = policy_options_for(scenario, settings)

    def evaluate(rate_rps: float) -> ProbeResult:
        started = time.perf_counter()
        trace = build_trace(
            scenario,
            rate_rps,
            settings.num_programs,
            predictor,
            seed=settings.seed,
            arrival=settings.arrival,
        )
        run = simulate_routed(
            trace,
            routing,
            profile,
            options,
            target=settings.target,
            early_stop=settings.early_stop,
        )
        result = score(run.outcomes, settings.target)
        return replace(
            result,
            rate_rps=rate_rps,
            passed=result.passed and not run.is_stopped_early,
            is_stopped_early=run.is_stopped_early,
            wall_s=time.perf_counter() - started,
        )

    return bisect_capacity(
        evaluate,
        start_rps=settings.start_rps,
        resolution=settings.resolution,
        min_rps=settings.min_rps,
        max_rps=settings.max_rps,
    )

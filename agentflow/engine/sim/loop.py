"""The fast face of the simulator: a plain discrete-event loop over a trace (no asyncio).

Events are request arrivals (trace roots, and follow-ups released when their parent finishes),
step ends and KV hand-offs. At each event time the loop finishes due steps (their tokens are
stamped at the step end), then adds arrivals, then starts a step on every idle instance. Time
jumps from event to event, so a run costs only the Python work per step; nothing reads a clock.
Deterministic: every choice is ordered, and the only randomness (step jitter) is seeded.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agentflow.engine.sim.deployment import Deployment, Progress
from agentflow.engine.sim.policies import PolicyOptions, make_deployment
from agentflow.engine.sim.profiles import SimProfile
from agentflow.engine.sim.request import (
    FinishReason,
    Lane,
    RequestOutcome,
    RequestSpec,
    SimRequest,
)
from agentflow.metrics.attainment import TOLERANCE

__all__ = ["Simulation", "StopRule", "simulate"]


@dataclass(frozen=True, slots=True)
class StopRule:
    """When a simulation gives up on draining the queue."""

    max_time_s: float | None = None
    """Stop at this simulated time (default: last trace arrival + `drain_limit_s`)."""
    drain_limit_s: float = 600.0
    max_missed_programs: int | None = None
    """Stop as soon as more programs than this have missed an SLO (capacity search: the
    probe has failed already). Unfinished requests then end as `STOPPED`."""


class Simulation:
    """One run of a trace through one deployment; `run()` returns the outcomes.

    Args:
        trace: the requests; follow-ups name their parent in `after_id`.
        deployment: the policy's instances (see `make_deployment`).
        stop: when to give up.
    """

    def __init__(
        self, trace: Sequence[RequestSpec], deployment: Deployment, stop: StopRule | None = None
    ) -> None:
        self.trace = list(trace)
        self.deployment = deployment
        self.stop = stop or StopRule()
        self.requests: dict[str, SimRequest] = {}
        self.missed_programs: set[str] = set()
        self._children: dict[str, list[RequestSpec]] = {}
        self._num_left_by_program: dict[str, int] = {}
        """program_id -> its requests not yet finished; at 0 the program has ended, which the
        deployment is told as the runtime tells a pool."""
        self._arrivals: list[tuple[float, int, RequestSpec]] = []
        self._seq = itertools.count()
        for spec in self.trace:
            if spec.program_id:
                left = self._num_left_by_program.get(spec.program_id, 0)
                self._num_left_by_program[spec.program_id] = left + 1
            if spec.after_id is None:
                self._push(spec.arrival_s, spec)
            else:
                self._children.setdefault(spec.after_id, []).append(spec)
        self.end_s = 0.0

    def _push(self, arrival_s: float, spec: RequestSpec) -> None:
        heapq.heappush(self._arrivals, (arrival_s, next(self._seq), spec))

    def run(self) -> list[RequestOutcome]:
        """Simulate until every request ends or a stop rule fires."""
        stop = self.stop
        roots = [s.arrival_s for s in self.trace if s.after_id is None]
        limit_s = stop.max_time_s
        if limit_s is None:
            limit_s = (max(roots) if roots else 0.0) + stop.drain_limit_s
        watch = stop.max_missed_programs is not None
        reason = FinishReason.TIMEOUT
        deployment = self.deployment
        now_s = 0.0
        while True:
            next_arrival = self._arrivals[0][0] if self._arrivals else math.inf
            next_event = deployment.next_event_s()
            now_s = min(next_arrival, math.inf if next_event is None else next_event)
            if now_s == math.inf or now_s > limit_s:
                break
            progress = deployment.advance(now_s)
            self._settle(progress, now_s, watch)
            while self._arrivals and self._arrivals[0][0] <= now_s:
                arrival_s, _, spec = heapq.heappop(self._arrivals)
                self._arrive(spec, arrival_s)
            if watch and len(self.missed_programs) > (stop.max_missed_programs or 0):
                reason = FinishReason.STOPPED
                break
            deployment.begin_steps(now_s)
        self.end_s = min(now_s, limit_s)
        return self._outcomes(reason)

    def _arrive(self, spec: RequestSpec, arrival_s: float) -> None:
        request = SimRequest(spec, arrival_s)
        self.requests[spec.request_id] = request
        if not self.deployment.add(request, arrival_s):
            self._on_finished(request)

    def _settle(self, progress: Progress, now_s: float, watch: bool) -> None:
        if watch:
            for request in progress.emitted:
                if request.num_generated == 1 and _first_token_missed(request):
                    self.missed_programs.add(request.program_id or request.request_id)
        for request in progress.finished:
            self._on_finished(request)
            for child in self._children.pop(request.request_id, ()):
                self._push(now_s + child.delay_s, child)
            if request.program_id:
                left = self._num_left_by_program[request.program_id] - 1
                self._num_left_by_program[request.program_id] = left
                if left == 0:
                    self.deployment.end_program(request.program_id, now_s)

    def _on_finished(self, request: SimRequest) -> None:
        if self.stop.max_missed_programs is not None and not request.outcome().slo_met:
            self.missed_programs.add(request.program_id or request.request_id)

    def _outcomes(self, reason: FinishReason) -> list[RequestOutcome]:
        outcomes = []
        for spec in self.trace:
            request = self.requests.get(spec.request_id)
            if request is None:  # never arrived: its parent did not finish
                request = SimRequest(spec, max(spec.arrival_s, self.end_s))
            if request.finish_reason is None:
                request.finish_reason = reason
            outcomes.append(request.outcome())
        return outcomes


def _first_token_missed(request: SimRequest) -> bool:
    if request.lane is Lane.BEST_EFFORT:
        return True
    assert request.first_token_s is not None
    return request.first_token_s - request.arrival_s > request.ttft_s * (1 + TOLERANCE)


def simulate(
    trace: Sequence[RequestSpec],
    policy: str,
    profile: SimProfile,
    options: PolicyOptions | None = None,
    stop: StopRule | None = None,
) -> list[RequestOutcome]:
    """Run `trace` through `policy` on `profile`; one outcome per request, in trace order.

    Args:
        trace: requests with SLOs resolved to seconds (see `agentflow.workloads`).
        policy: "vllm", "sarathi", "distserve" or "agentflow".
        profile: hardware/model profile (`get_profile(...)`).
        options: policy settings; Sarathi's budget follows the trace's tightest TPOT unless
            `options` is given.
        stop: when to give up draining.

    Returns:
        Outcomes with per-token times; score them with `RequestOutcome.verdict()`.
    """
    if options is None:
        options = PolicyOptions()
        if trace:
            options = replace(options, tightest_tpot_s=min(s.tpot_s for s in trace))
    deployment = make_deployment(policy, profile, options)
    return Simulation(trace, deployment, stop).run()

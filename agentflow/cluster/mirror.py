"""The router's mirror of one replica: its in-flight requests, their progress, and its planner.

# NOTE(cluster): every token of every request streams back through the pool, so the driver
# sees each replica's progress events (submission, first token, each delta, end) as they
# happen. The mirror folds them into `Flight`s and answers "would this replica's planner admit
# one more request now?" by running `agentflow.planner.plan` on current + candidate, locally,
# without an RPC. What it cannot see is prefill progress before the first token, so an
# unstarted request counts as wholly unprefilled (conservative).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agentflow.cluster.activity import ProgramActivity
from agentflow.cluster.spec import PlannerView
from agentflow.engine.sim import Lane
from agentflow.planner import PlannerConfig, PlanRequest, StepTimePredictor, make_planner

__all__ = ["Flight", "ReplicaMirror"]

_MIN_BUDGET_S = 1e-3
"""PlanRequest needs positive budgets; a zero budget is planned as 1 ms (never admissible)."""


@dataclass(slots=True)
class Flight:
    """One request as the router tracks it (mutable; lives in the driver only)."""

    request_id: str
    program_id: str
    arrival_s: float
    """When the pool received it (the driver's monotonic clock)."""
    ttft_s: float
    tpot_s: float
    num_prompt_tokens: int
    max_output_tokens: int
    num_output_tokens: int = 0
    first_token_s: float | None = None
    is_admitted: bool = False
    """Routed as admitted, or reported admitted by the engine (the engine's word wins)."""

    @property
    def is_started(self) -> bool:
        """Whether its first token has come back."""
        return self.first_token_s is not None

    def plan_request(self) -> PlanRequest:
        """The planner's view (before the first token, no prefill progress is assumed)."""
        return PlanRequest(
            request_id=self.request_id,
            arrival_s=self.arrival_s,
            ttft_s=max(self.ttft_s, _MIN_BUDGET_S),
            tpot_s=max(self.tpot_s, _MIN_BUDGET_S),
            num_prompt_tokens=self.num_prompt_tokens,
            num_computed_tokens=self.num_prompt_tokens if self.is_started else 0,
            num_output_tokens=self.num_output_tokens,
            max_output_tokens=max(1, self.max_output_tokens),
            first_token_s=self.first_token_s,
            is_admitted=self.is_admitted,
        )

    def is_plan_candidate(self, now_s: float) -> bool:
        """Whether the replica's planner still considers it (as the engines do).

        Admitted requests always; best-effort ones only before their first token and while
        their TTFT can still be met.
        """
        return self.is_admitted or (not self.is_started and self.arrival_s + self.ttft_s > now_s)


class ReplicaMirror:
    """One replica's in-flight requests as the router sees them, and its admission test.

    Args:
        replica_id: the replica's index in the pool.
        view: its planner model and limits (None: no admission judgement, always admits).
    """

    def __init__(self, replica_id: int, view: PlannerView | None) -> None:
        self.replica_id = replica_id
        self.is_alive = True
        self.flight_by_id: dict[str, Flight] = {}
        """request_id -> Flight, for every request this replica holds now."""
        self._config: PlannerConfig | None = view.config if view is not None else None
        self._predictor: StepTimePredictor | None = view.predictor() if view else None
        self._planner = make_planner(view.config.planner) if view is not None else None
        self.num_plans = 0
        self.transit_s = 0.0
        """Delivery time driver <-> this replica's engine, kept up to date by the pool. The
        engine starts a request's TTFT clock that much later (the pool hands it the budget
        left), so the planner here judges unstarted requests by that earlier deadline too."""
        self.activity = ProgramActivity()
        """Programs served here now or between their rounds (`num_active_programs`)."""

    # -- events ------------------------------------------------------------------------------

    def add(self, flight: Flight, *, is_admitted: bool) -> None:
        """The request was dispatched here (as admitted or best-effort)."""
        flight.is_admitted = is_admitted
        self.flight_by_id[flight.request_id] = flight
        self.activity.dispatched(flight.program_id or flight.request_id, flight.arrival_s)

    def record_output(
        self, request_id: str, num_tokens: int, now_s: float, lane: str | None
    ) -> None:
        """Tokens came back; `lane` is the engine's word on admission, if it has one."""
        flight = self.flight_by_id.get(request_id)
        if flight is None:
            return
        if num_tokens > 0 and flight.first_token_s is None:
            flight.first_token_s = now_s
        flight.num_output_tokens += num_tokens
        if lane is not None:
            flight.is_admitted = lane == Lane.ADMITTED

    def remove(self, request_id: str, now_s: float) -> None:
        """The request ended here at `now_s` (finished, failed, cancelled or moved)."""
        flight = self.flight_by_id.pop(request_id, None)
        if flight is not None:
            self.activity.ended(flight.program_id or flight.request_id, now_s)

    def mark_dead(self) -> None:
        """The replica is gone: it admits nothing any more."""
        self.is_alive = False

    # -- questions ---------------------------------------------------------------------------

    @property
    def num_in_flight(self) -> int:
        """Requests this replica holds now."""
        return len(self.flight_by_id)

    def num_active_programs(self, now_s: float) -> int:
        """Programs with a request here, or between rounds here (`ProgramActivity`)."""
        return self.activity.num_active(now_s)

    @property
    def num_waiting_best_effort(self) -> int:
        """Best-effort requests here that have not produced a token yet."""
        return sum(1 for f in self.flight_by_id.values() if not f.is_admitted and not f.is_started)

    @property
    def has_planner(self) -> bool:
        """Whether admission can be judged (the engine has an SLO planner)."""
        return self._planner is not None

    def can_admit(self, candidate: PlanRequest, now_s: float) -> bool:
        """Whether this replica's planner would admit `candidate` beside its current load."""
        if not self.is_alive:
            return False
        config, predictor, planner = self._config, self._predictor, self._planner
        if config is None or predictor is None or planner is None:
            return True
        if candidate.prefill_deadline_s - self.transit_s <= now_s:  # TTFT already missed
            return False
        admitted = [f for f in self.flight_by_id.values() if f.is_admitted]
        # Cheap rejections first: seats and KV (the planner would refuse these too).
        if len(admitted) >= config.max_num_seqs:
            return False
        blocks = sum(f.plan_request().num_kv_blocks(config.block_size) for f in admitted)
        if blocks + candidate.num_kv_blocks(config.block_size) > config.kv_blocks_total:
            return False
        running: list[PlanRequest] = []
        waiting: list[PlanRequest] = []
        for flight in self.flight_by_id.values():
            if flight.is_plan_candidate(now_s):
                if flight.is_started:
                    running.append(flight.plan_request())
                else:
                    waiting.append(self._as_the_engine_sees(flight.plan_request()))
        waiting.append(self._as_the_engine_sees(candidate))
        plan = planner.plan(now_s, running, waiting, predictor, config)
        self.num_plans += 1
        return candidate.request_id in plan.admitted_ids

    def _as_the_engine_sees(self, request: PlanRequest) -> PlanRequest:
        """An unstarted request with the TTFT its engine gets: less the transit time."""
        if self.transit_s <= 0.0:
            return request
        return replace(request, ttft_s=max(_MIN_BUDGET_S, request.ttft_s - self.transit_s))

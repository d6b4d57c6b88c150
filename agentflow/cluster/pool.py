"""The replica pool: N engines behind one `Engine`, with SLO-aware routing and fail-over.

`Pool` implements the `Engine` protocol, so `Runtime(pool)` runs programs on many replicas
unchanged. Each request is routed once (see `routing.py`); if its replica dies before the
request produced a token it is re-submitted elsewhere, otherwise it ends with `RequestFailed`
naming the replica. Every request therefore ends finished or failed with a reason the caller
sees; none is dropped. The caller sees the lane on each `TokenDelta`: the engine's own word
where it has an SLO scheduler, else the router's decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentflow.cluster.lane import BestEffortLane
from agentflow.cluster.mirror import Flight, ReplicaMirror
from agentflow.cluster.ray_setup import connect_ray, disconnect_ray
from agentflow.cluster.replica import ReplicaHandle, ReplicaInfo, ReplicaLost
from agentflow.cluster.router import Router, RouterStats
from agentflow.cluster.routing import Route, make_routing_policy
from agentflow.cluster.spec import EngineSpec, PromptCounter
from agentflow.engine.chat import ChatRenderer, Messages
from agentflow.engine.interface import GenerationRequest, TokenDelta
from agentflow.engine.sim import Lane
from agentflow.errors import ConfigError, EngineError, RequestFailed
from agentflow.planner import StepTimePredictor

__all__ = ["Pool", "PoolConfig", "PoolStats", "start_pool"]

_MIN_TTFT_MS = 1.0
"""A request whose TTFT is already spent reaches the engine with this budget (best-effort)."""


class PoolConfig(BaseModel):
    """How a pool runs. Validated once, at the CLI or API edge.

    Raises:
        ConfigError: on any invalid field; the message names the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_replicas: int = Field(default=2, ge=1)
    routing: Literal["agentflow", "round_robin", "least_loaded"] = "agentflow"
    ray_address: str | None = None
    """Ray cluster to join; None starts a local instance on loopback (stopped with the pool)."""
    num_cpus_per_replica: float = Field(default=1.0, ge=0.0)
    """Ray logical CPUs each replica actor reserves (placement across a cluster's nodes)."""
    max_waiting_best_effort: int = Field(default=2, ge=1)
    """Unstarted best-effort requests a replica may hold; more wait in the central lane."""
    recheck_interval_s: float = Field(default=0.02, gt=0.0)
    """How often the central lane re-offers waiting requests without an event."""
    max_resubmits: int | None = Field(default=None, ge=0)
    """Moves of one request after replica deaths (None: one per other replica)."""
    transit_allowance_ms: float = Field(default=20.0, ge=0.0)
    """Least driver -> replica -> driver delivery time taken off the TTFT budget the engine
    plans with. Each replica's measured delivery time (p90 of its recent requests) replaces it
    when larger: Ray takes a few ms on an idle box, hundreds on a loaded 2-core one."""
    stop_timeout_s: float = Field(default=30.0, gt=0.0)
    """Graceful engine shutdown per replica before its actor is killed."""
    runtime_env: dict[str, Any] | None = None
    """Ray runtime environment of the replica actors (e.g. `{"env_vars": {...}}`)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(pool)'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid pool settings: {fields}") from exc


@dataclass(frozen=True, slots=True)
class PoolStats:
    """What the pool did since it started."""

    router: RouterStats
    num_requests: int
    num_finished: int
    num_failed: int
    num_resubmitted: int
    """Requests moved to another replica after theirs died (before any token)."""
    num_waiting: int
    """Requests waiting in the central best-effort lane now."""
    transit_ms_by_replica: dict[int, float]
    """Delivery time each replica's TTFT budget is cut by now (measured, or the floor)."""


class Pool:
    """Replicas as Ray actors behind one `Engine`.

    Args:
        spec: how each replica builds its engine (`VLLMSpec`, `FactorySpec`, ...).
        config: pool settings.
    """

    name = "pool"

    def __init__(self, spec: EngineSpec, config: PoolConfig | None = None) -> None:
        self.spec = spec
        self.config = config or PoolConfig()
        self.replicas: list[ReplicaHandle] = []
        self._router: Router | None = None
        self._lane: BestEffortLane | None = None
        self._lane_task: asyncio.Task[None] | None = None
        self._owns_ray = False
        self._counter: PromptCounter | None = None
        self._chat_renderer: ChatRenderer | None = None
        self._predictor = StepTimePredictor.default_cpu()
        self._num_requests = self._num_finished = self._num_failed = self._num_resubmitted = 0

    async def __aenter__(self) -> Pool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Ray, start every replica's engine, and start routing.

        Raises:
            EngineError: a replica failed to start (every replica is stopped again).
        """
        if self._router is not None:
            return
        cfg = self.config
        num_cpus = max(1, math.ceil(cfg.num_replicas * cfg.num_cpus_per_replica))
        self._owns_ray = connect_ray(
            cfg.ray_address, num_cpus=num_cpus, runtime_env=cfg.runtime_env
        )
        self.replicas = [
            ReplicaHandle.launch(i, self.spec, num_cpus=cfg.num_cpus_per_replica)
            for i in range(cfg.num_replicas)
        ]
        try:
            infos: list[ReplicaInfo] = await asyncio.gather(*(r.start() for r in self.replicas))
            # A first burst arrives before any request was measured: seed each replica's
            # delivery time with round trips to it.
            await asyncio.gather(*(r.measure_round_trips() for r in self.replicas))
        except BaseException:
            await self._stop_replicas()
            raise
        views = [info.view for info in infos]
        # Relative budgets are priced by a replica's step-time model, whatever its scheduler:
        # a stock-vLLM replica has timed itself at start just as an agentflow one has.
        models = [info.step_time_json for info in infos if info.step_time_json is not None]
        if models:
            self._predictor = StepTimePredictor.from_json(models[0])
        router = Router(
            make_routing_policy(cfg.routing),
            [ReplicaMirror(i, v) for i, v in enumerate(views)],
            max_waiting_best_effort=cfg.max_waiting_best_effort,
        )
        self._lane = BestEffortLane(
            router, time.monotonic, recheck_interval_s=cfg.recheck_interval_s
        )
        self._lane_task = asyncio.get_running_loop().create_task(self._lane.run())
        self._router = router
        for replica in self.replicas:
            self._share_transit(replica)

    async def shutdown(self) -> None:
        """Stop every replica (and a Ray instance the pool started). Safe to call twice."""
        router, lane, self._router = self._router, self._lane, None
        if router is not None and lane is not None:
            for mirror in router.mirrors:
                mirror.mark_dead()
            lane.drain(time.monotonic())  # waiters learn that no replica is left
        if self._lane_task is not None:
            self._lane_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lane_task
            self._lane_task = None
        await self._stop_replicas()

    async def _stop_replicas(self) -> None:
        replicas, self.replicas = self.replicas, []
        await asyncio.gather(
            *(r.stop(self.config.stop_timeout_s) for r in replicas), return_exceptions=True
        )
        if self._owns_ray:
            disconnect_ray()
            self._owns_ray = False

    # -- the Engine protocol -----------------------------------------------------------------

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        """Prompt tokens, counted in the driver with the replicas' tokenizer."""
        if self._counter is None:
            self._counter = self.spec.make_prompt_counter()
        return self._counter(prompt, use_chat_template)

    def render_messages(self, messages: Messages) -> str:
        """A conversation as the replicas prefill it, rendered in the driver."""
        if self._chat_renderer is None:
            self._chat_renderer = self.spec.make_chat_renderer()
        return self._chat_renderer(messages)

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        """Predicted prefill time of a lone prompt on one replica (its step-time model)."""
        return self._predictor.isolated_prefill_s(num_tokens) * 1e3

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        """Predicted decode step of a lone request on one replica (its step-time model)."""
        return self._predictor.lone_decode_s(num_context_tokens) * 1e3

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Route `request`, stream it from its replica, and move it if the replica dies early.

        Raises:
            RequestFailed: the engine failed it, its replica died after it produced tokens, or
                no replica is left.
        """
        router, lane = self._require_started()
        self._num_requests += 1
        flight = self._flight(request, time.monotonic())
        num_emitted = 0
        max_moves = self.config.max_resubmits
        if max_moves is None:
            max_moves = max(0, len(self.replicas) - 1)
        try:
            for attempt in range(max_moves + 1):
                route = await self._dispatch(flight, request.request_id)
                try:
                    serving = self._serve(route, request, flight.arrival_s)
                    async with contextlib.aclosing(serving) as deltas:
                        async for delta in deltas:
                            num_emitted += delta.num_tokens
                            yield delta
                    self._num_finished += 1
                    return
                except ReplicaLost as exc:
                    self._on_lost(route.replica_id)
                    router.release(request.request_id, time.monotonic())
                    if num_emitted > 0 or attempt == max_moves:
                        raise RequestFailed(
                            f"{exc} after {num_emitted} output tokens (attempt {attempt + 1});"
                            " a partially generated output cannot be resumed elsewhere",
                            request_id=request.request_id,
                        ) from exc
                    self._num_resubmitted += 1
                    flight = self._flight(request, flight.arrival_s)
        except RequestFailed:
            self._num_failed += 1
            raise
        finally:
            router.release(request.request_id, time.monotonic())
            lane.notify()  # capacity freed

    def end_program(self, program_id: str) -> None:
        """The runtime says `program_id` finished: routing stops counting it on any replica.

        Between its stages a program holds no request, yet it will come back to its replica;
        this signal tells the router when it will not (`ProgramActivity`).
        """
        if self._router is not None:
            self._router.end_program(program_id)

    async def _serve(
        self, route: Route, request: GenerationRequest, arrival_s: float
    ) -> AsyncGenerator[TokenDelta, None]:
        router, lane = self._require_started()
        replica = self.replicas[route.replica_id]
        # The engine starts its TTFT clock when the request reaches it: hand it what is left
        # of the caller's budget after the time spent here (central lane, earlier replicas)
        # and in transit, so that its planner judges the caller's deadline, not a later one.
        waited_ms = (time.monotonic() - arrival_s) * 1e3
        transit_ms = replica.transit.allowance_ms(self.config.transit_allowance_ms)
        left_ms = request.ttft_ms - waited_ms - transit_ms
        sent = replace(request, ttft_ms=max(_MIN_TTFT_MS, left_ms))
        is_started = False
        async with contextlib.aclosing(replica.stream(sent)) as deltas:
            async for delta in deltas:
                router.record_output(
                    request.request_id, delta.num_tokens, time.monotonic(), delta.lane
                )
                if delta.lane is None and route.lane is not None:
                    delta = replace(delta, lane=route.lane.value)
                if not is_started and delta.num_tokens > 0:
                    is_started = True
                    self._share_transit(replica)  # the replica measured one more delivery
                    lane.notify()  # a best-effort backlog may have shrunk
                yield delta

    async def _dispatch(self, flight: Flight, request_id: str) -> Route:
        router, lane = self._require_started()
        route = router.propose(flight, time.monotonic())
        is_queued = (
            route is not None
            and route.lane is Lane.BEST_EFFORT
            and (router.is_backed_up(route) or len(lane) > 0)
        )
        if is_queued:
            route = await lane.wait(flight)  # committed by the lane
        elif route is not None:
            router.commit(flight, route)
        if route is None:
            raise RequestFailed("no live replica is left in the pool", request_id=request_id)
        return route

    def _share_transit(self, replica: ReplicaHandle) -> None:
        """Give the router the replica's current transit allowance.

        Its admission test, for dispatch and for promotion from the central lane, then judges
        the deadline the engine will get.
        """
        router, _ = self._require_started()
        allowance_ms = replica.transit.allowance_ms(self.config.transit_allowance_ms)
        router.mirrors[replica.replica_id].transit_s = allowance_ms / 1e3

    def _on_lost(self, replica_id: int) -> None:
        router, _ = self._require_started()
        if router.mirrors[replica_id].is_alive:
            router.mark_dead(replica_id)
            with contextlib.suppress(Exception):  # make sure it cannot come back half-alive
                self.replicas[replica_id].kill()

    def _flight(self, request: GenerationRequest, arrival_s: float) -> Flight:
        return Flight(
            request_id=request.request_id,
            program_id=request.program_id,
            arrival_s=arrival_s,
            ttft_s=request.ttft_ms / 1e3,
            tpot_s=request.tpot_ms / 1e3,
            num_prompt_tokens=self.count_prompt_tokens(
                request.prompt, use_chat_template=request.use_chat_template
            ),
            max_output_tokens=request.max_tokens,
        )

    def _require_started(self) -> tuple[Router, BestEffortLane]:
        if self._router is None or self._lane is None:
            raise EngineError("pool is not started: await pool.start() first")
        return self._router, self._lane

    # -- inspection --------------------------------------------------------------------------

    def use_routing(self, routing: str) -> None:
        """Route new requests with another policy, on the same replicas (benchmarks).

        Raises:
            ConfigError: unknown policy.
        """
        self._require_started()[0].policy = make_routing_policy(routing)

    @property
    def router(self) -> Router:
        """The router (its mirrors, affinity and counters)."""
        return self._require_started()[0]

    def stats(self) -> PoolStats:
        """Counters since the start."""
        router, lane = self._require_started()
        return PoolStats(
            router=router.stats(),
            num_requests=self._num_requests,
            num_finished=self._num_finished,
            num_failed=self._num_failed,
            num_resubmitted=self._num_resubmitted,
            num_waiting=len(lane),
            transit_ms_by_replica={
                r.replica_id: r.transit.allowance_ms(self.config.transit_allowance_ms)
                for r in self.replicas
            },
        )


async def start_pool(
    num_replicas: int,
    engine_spec: EngineSpec,
    ray_address: str | None = None,
    **settings: Any,
) -> Pool:
    """Start a pool of `num_replicas` replicas (a local Ray instance unless `ray_address`).

    Args:
        num_replicas: replicas to start.
        engine_spec: how each replica builds its engine.
        ray_address: a Ray cluster to join; None starts Ray locally.
        **settings: further `PoolConfig` fields (e.g. `routing="least_loaded"`).
    """
    config = PoolConfig(num_replicas=num_replicas, ray_address=ray_address, **settings)
    pool = Pool(engine_spec, config)
    await pool.start()
    return pool

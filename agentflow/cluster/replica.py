"""One replica: a Ray actor that owns one engine, and the driver's handle to it.

The actor (`ReplicaServer`) builds its engine from an `EngineSpec` inside its own worker
process, so engine processes (vLLM's engine core and workers) are its children and die with
it. Streams are Ray streaming generators: one object per `TokenDelta`. A request that fails
inside the engine ends its stream with a `StreamError` item (Ray cannot carry our exception
types faithfully); the handle turns it back into `RequestFailed`. Before a request's first
output the actor sends its engine-side TTFT, from which the handle measures delivery time.
If the actor dies, the handle raises `ReplicaLost`, and the pool decides whether the request
can move.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentflow.cluster.spec import EngineSpec, PlannerView
from agentflow.cluster.transit import FirstTokenTiming, TransitTracker
from agentflow.engine.interface import Engine, GenerationRequest, TokenDelta
from agentflow.errors import EngineError, RequestFailed

if TYPE_CHECKING:
    from ray.actor import ActorHandle

__all__ = ["ReplicaHandle", "ReplicaInfo", "ReplicaLost", "ReplicaServer", "StreamError"]


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A started replica, as it reports itself."""

    replica_id: int
    pid: int
    """Process id of the actor (its engine processes are its children)."""
    node_ip: str
    engine_name: str
    view: PlannerView | None
    """Its planner model and limits (None: the engine has no planner)."""
    step_time_json: str | None = None
    """Its engine's step-time model, whatever the scheduler (None: not known)."""


@dataclass(frozen=True, slots=True)
class StreamError:
    """The last item of a stream whose request failed inside the engine."""

    message: str


class ReplicaLost(Exception):
    """The replica actor died or became unreachable.

    Internal to `agentflow.cluster`: the pool turns it into a re-submission or a
    `RequestFailed`, so callers never see it.
    """

    def __init__(self, replica_id: int, detail: str) -> None:
        super().__init__(f"replica {replica_id} lost: {detail}")
        self.replica_id = replica_id


class ReplicaServer:
    """The body of one replica actor: one engine, many concurrent streams.

    Args:
        spec: how to build the engine.
        replica_id: index in the pool (for reports).
    """

    def __init__(self, spec: EngineSpec, replica_id: int) -> None:
        self.spec = spec
        self.replica_id = replica_id
        self._engine: Engine | None = None

    async def start(self) -> ReplicaInfo:
        """Build and start the engine; report the planner view."""
        import ray

        engine = self.spec.build(self.replica_id)
        await engine.start()
        self._engine = engine
        return ReplicaInfo(
            replica_id=self.replica_id,
            pid=os.getpid(),
            node_ip=str(ray.util.get_node_ip_address()),  # type: ignore[no-untyped-call]
            engine_name=engine.name,
            view=self.spec.planner_view(engine),
            step_time_json=self.spec.step_time_json(engine),
        )

    async def stream(
        self, request: GenerationRequest
    ) -> AsyncIterator[TokenDelta | StreamError | FirstTokenTiming]:
        """Serve one request; cancelling the Ray task aborts it in the engine."""
        if self._engine is None:
            yield StreamError(f"replica {self.replica_id} is not started")
            return
        received_s = time.monotonic()
        is_started = False
        try:
            async for delta in self._engine.stream(request):
                if not is_started and delta.num_tokens > 0:
                    is_started = True
                    yield FirstTokenTiming(time.monotonic() - received_s)
                yield delta
        except EngineError as exc:  # RequestFailed included
            yield StreamError(str(exc))

    async def shutdown(self) -> None:
        """Stop the engine (and its processes)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.shutdown()

    def pid(self) -> int:
        """The actor's process id (liveness probe)."""
        return os.getpid()

    def count_prompt_tokens(self, prompt: str, use_chat_template: bool = True) -> int:
        """The engine's own prompt-token count (to check the driver's counter against)."""
        if self._engine is None:
            raise EngineError(f"replica {self.replica_id} is not started")
        return self._engine.count_prompt_tokens(prompt, use_chat_template=use_chat_template)


class ReplicaHandle:
    """The driver's handle to one replica actor.

    Args:
        replica_id: index in the pool.
        actor: the Ray actor running `ReplicaServer`.
    """

    def __init__(self, replica_id: int, actor: ActorHandle[Any]) -> None:
        self.replica_id = replica_id
        self.actor = actor
        self.info: ReplicaInfo | None = None
        self.transit = TransitTracker()
        """Measured delivery time driver <-> this replica (see `agentflow.cluster.transit`)."""

    @classmethod
    def launch(
        cls, replica_id: int, spec: EngineSpec, *, num_cpus: float, name: str | None = None
    ) -> ReplicaHandle:
        """Create the actor (it starts its engine when `start` is awaited)."""
        import ray

        options: dict[str, Any] = {
            "num_cpus": num_cpus,
            "max_restarts": 0,
            "max_concurrency": 10_000,
        }
        if name is not None:
            options["name"] = name
        actor_cls: Any = ray.remote(ReplicaServer)
        return cls(replica_id, actor_cls.options(**options).remote(spec, replica_id))

    async def start(self) -> ReplicaInfo:
        """Start the engine inside the actor.

        Raises:
            EngineError: the engine failed to start, or the actor died.
        """
        import ray

        try:
            self.info = await self.actor.start.remote()
        except ray.exceptions.RayError as exc:
            raise EngineError(f"replica {self.replica_id} failed to start: {exc}") from exc
        return self.info

    async def measure_round_trips(self, count: int = 4) -> None:
        """Time `count` calls to the actor into `transit` (a request's delivery, less the engine).

        Raises:
            EngineError: the actor died (the pool is still starting: nothing to move).
        """
        import ray

        for _ in range(count):
            sent_s = time.monotonic()
            try:
                await self.actor.pid.remote()
            except ray.exceptions.RayError as exc:
                raise EngineError(
                    f"replica {self.replica_id} failed to start: {_first_line(exc)}"
                ) from exc
            self.transit.record(time.monotonic() - sent_s, engine_ttft_s=0.0)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Stream `request` on this replica.

        Raises:
            RequestFailed: the engine failed the request.
            ReplicaLost: the actor died (or cannot be reached) before the stream ended.
        """
        import ray

        sent_s = time.monotonic()
        refs: Any = self.actor.stream.options(num_returns="streaming").remote(request)
        is_done = False
        try:
            async for ref in refs:
                item = await ref
                if isinstance(item, FirstTokenTiming):
                    self.transit.record(time.monotonic() - sent_s, item.engine_ttft_s)
                    continue
                if isinstance(item, StreamError):
                    is_done = True
                    raise RequestFailed(item.message, request_id=request.request_id)
                is_done = item.finished
                yield item
        except ray.exceptions.RayActorError as exc:
            is_done = True
            raise ReplicaLost(self.replica_id, _first_line(exc)) from exc
        except ray.exceptions.RayTaskError as exc:
            is_done = True
            raise RequestFailed(
                f"replica {self.replica_id}: {_first_line(exc)}", request_id=request.request_id
            ) from exc
        finally:
            if not is_done:  # the caller stopped early: abort the request in the engine
                ray.cancel(refs)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Shut the engine down gracefully, then end the actor."""
        import anyio
        import ray

        with anyio.move_on_after(timeout_s):
            with contextlib.suppress(ray.exceptions.RayError):  # already dead: nothing to stop
                await self.actor.shutdown.remote()
        self.kill()

    def kill(self) -> None:
        """End the actor at once (its engine processes die with it)."""
        import ray

        ray.kill(self.actor, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Runs program instances concurrently on one engine and collects their results."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from agentflow.engine.interface import Engine, ProgramAwareEngine
from agentflow.errors import IterationLimit
from agentflow.program.agent import Agent
from agentflow.runtime.context import Context
from agentflow.runtime.events import EventSink, ProgramEvent, ProgramFinished, ProgramStarted
from agentflow.runtime.records import ProgramResult, ProgramStatus

if TYPE_CHECKING:
    from tools.client import ToolClient

__all__ = ["Runtime"]

_log = logging.getLogger(__name__)


class Runtime:
    """The facade users get: run an agent on many inputs over a shared engine.

    Every submitted instance ends in a `ProgramResult` with a terminal status; an exception in
    one instance fails that instance only.

    Args:
        engine: the started engine every stage call is served on.
        ignore_eos: generate exactly `max_tokens` per stage (benchmarks, random weights).
        tools: the tool servers programs call (`ctx.call_tool`).
        observers: called with every event of every run (tracing, logging); must not block.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ignore_eos: bool = False,
        tools: ToolClient | None = None,
        observers: Sequence[EventSink] = (),
    ) -> None:
        self.engine = engine
        self.ignore_eos = ignore_eos
        self.tools = tools
        self.observers = tuple(observers)
        self._ids = itertools.count()
        # Measure on the engine's clock when it has one (the simulator on virtual time).
        self._now_s: Callable[[], float] = getattr(engine, "now_s", time.monotonic)
        self._started_s = self._now_s()

    async def run_one(
        self,
        agent: Agent,
        inputs: dict[str, Any],
        *,
        program_id: str | None = None,
        on_event: EventSink | None = None,
    ) -> ProgramResult:
        """Run one program instance to a terminal state.

        Args:
            agent: the program.
            inputs: its keyword inputs.
            program_id: the instance's id (default: the agent's name and a counter).
            on_event: called with each event of the run as it happens, from
                `ProgramStarted` (stages starting, their output, their records, tool calls) to
                `ProgramFinished`; after the runtime's observers.
        """
        program_id = program_id or f"{agent.name}-{next(self._ids)}"
        on_event = self._fan_out(on_event)
        if on_event is not None:
            on_event(ProgramStarted(program_id, agent.name, inputs, agent.deadline_ms))
        started_s = self._now_s()
        budget_s = agent.deadline_ms / 1e3 if agent.deadline_ms is not None else None
        ctx = Context(
            program_id=program_id,
            engine=self.engine,
            run_started_s=self._started_s,
            ignore_eos=self.ignore_eos,
            tools=self.tools,
            deadline_s=time.monotonic() + budget_s if budget_s is not None else None,
            on_event=on_event,
        )
        result = ProgramResult(
            program_id=program_id, agent=agent.name, inputs=inputs, status=ProgramStatus.FAILED
        )
        try:
            with anyio.fail_after(budget_s):
                result.output = await agent(ctx, **inputs)
            result.status = ProgramStatus.FINISHED
        except IterationLimit as exc:
            result.status = ProgramStatus.MAX_ITERATIONS
            result.error = str(exc)
        except TimeoutError:
            result.status = ProgramStatus.DEADLINE_EXCEEDED
            result.error = f"program deadline of {agent.deadline_ms:g} ms exceeded"
        except Exception as exc:  # one failing instance must not take the others down
            result.error = f"{type(exc).__name__}: {exc}"
        except BaseException:  # cancelled: the caller left, but observers still see an end
            result.error = "cancelled"
            raise
        finally:
            if isinstance(self.engine, ProgramAwareEngine):
                try:  # routing stops counting the program as coming back (a pool)
                    self.engine.end_program(program_id)
                except Exception:
                    _log.exception("engine failed to note the end of %s", program_id)
            result.latency_ms = (self._now_s() - started_s) * 1e3
            result.stages = ctx.records
            result.tools = ctx.tool_records
            if on_event is not None:
                try:
                    on_event(ProgramFinished(result))
                except Exception:  # the run is over: a failing observer must not undo it
                    _log.exception("event observer failed on the end of %s", program_id)
        return result

    def _fan_out(self, on_event: EventSink | None) -> EventSink | None:
        """One sink for this run: the runtime's observers, then the caller's."""
        sinks = [*self.observers, *([on_event] if on_event is not None else [])]
        if len(sinks) <= 1:
            return sinks[0] if sinks else None

        def every(event: ProgramEvent) -> None:
            for sink in sinks:
                sink(event)

        return every

    @contextlib.asynccontextmanager
    async def stream(
        self, agent: Agent, inputs: dict[str, Any], *, program_id: str | None = None
    ) -> AsyncIterator[AsyncIterator[ProgramEvent]]:
        """Run one program instance, yielding its events as they happen.

        Use as ``async with runtime.stream(agent, inputs) as events: async for event in
        events: ...``; the last event is `ProgramFinished`. Leaving the block early cancels
        the run (its engine requests are aborted).
        """
        send, receive = anyio.create_memory_object_stream[ProgramEvent](math.inf)

        def deliver(event: ProgramEvent) -> None:
            # Once the reader has gone, the run is being cancelled: its last events go nowhere
            # (raising here would turn the cancellation into a program failure).
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(event)

        async def drive() -> None:
            async with send:
                await self.run_one(agent, inputs, program_id=program_id, on_event=deliver)

        async with anyio.create_task_group() as group, receive:
            group.start_soon(drive)
            try:
                yield receive
            finally:
                group.cancel_scope.cancel()

    async def run_many(
        self,
        agent: Agent,
        inputs: Sequence[dict[str, Any]],
        *,
        concurrency: int = 8,
        on_done: Callable[[ProgramResult], None] | None = None,
    ) -> list[ProgramResult]:
        """Run one instance per input, at most `concurrency` at a time; results in input order."""
        results: list[ProgramResult | None] = [None] * len(inputs)
        limiter = anyio.CapacityLimiter(max(1, concurrency))

        async def run_at(index: int) -> None:
            async with limiter:
                result = await self.run_one(agent, inputs[index])
            results[index] = result
            if on_done is not None:
                on_done(result)

        async with anyio.create_task_group() as group:
            for index in range(len(inputs)):
                group.start_soon(run_at, index)
        return [r for r in results if r is not None]

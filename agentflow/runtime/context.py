"""The object an agent body receives: `await ctx.run(stage, ...)` turns a stage into a request."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from agentflow.engine.interface import Engine, GenerationRequest
from agentflow.errors import ConfigError, ProgramError
from agentflow.program.stage import Stage
from agentflow.runtime.events import (
    EventSink,
    ProgramEvent,
    ToolCalled,
)
from agentflow.runtime.measure import measured_stream
from agentflow.runtime.records import StageRecord, ToolRecord

if TYPE_CHECKING:
    from tools.client import ToolClient
    from tools.result import ToolResult

__all__ = ["Context"]

_DEFAULT_TOOL_TIMEOUT_S = 10.0


class Context:
    """Per-program-instance handle to the runtime. Not shared between instances."""

    def __init__(
        self,
        *,
        program_id: str,
        engine: Engine,
        run_started_s: float,
        ignore_eos: bool = False,
        tools: ToolClient | None = None,
        deadline_s: float | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.program_id = program_id
        self.records: list[StageRecord] = []
        self.tool_records: list[ToolRecord] = []
        self.deadline_s = deadline_s
        """Monotonic time by which the program must end (None: no deadline)."""
        self._engine = engine
        # An engine with its own clock (the simulator on virtual time) is measured on it.
        self._now_s: Callable[[], float] = getattr(engine, "now_s", time.monotonic)
        self._tools = tools
        self._run_started_s = run_started_s
        self._ignore_eos = ignore_eos
        self._iterations: Counter[str] = Counter()
        self._on_event = on_event

    @property
    def remaining_s(self) -> float | None:
        """Seconds left before the program's deadline, or None without one."""
        return None if self.deadline_s is None else self.deadline_s - time.monotonic()

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> ToolResult:
        """Call a tool on the runtime's tool servers; failures come back as `ok=False`.

        The timeout is the smaller of `timeout_s` (default 10 s) and the time left before the
        program's deadline, so a slow tool cannot push the program past its budget.

        Raises:
            ConfigError: the runtime was started without tool servers.
        """
        if self._tools is None:
            raise ConfigError(
                f"program {self.program_id} called tool {name!r} but the runtime has no tool"
                " servers: pass Runtime(..., tools=ToolClient([...]))"
            )
        budget_s = timeout_s if timeout_s is not None else _DEFAULT_TOOL_TIMEOUT_S
        if (remaining := self.remaining_s) is not None:
            budget_s = min(budget_s, remaining)
        iteration = sum(1 for rec in self.tool_records if rec.tool == name)
        result = await self._tools.call(name, arguments or {}, timeout_s=budget_s)
        record = ToolRecord(
            program_id=self.program_id,
            tool=name,
            iteration=iteration,
            ok=result.ok,
            latency_ms=result.latency_ms,
            attempts=result.attempts,
            error=result.error,
        )
        self.tool_records.append(record)
        self._emit(ToolCalled(record))
        return result

    async def run(self, stage: Stage[Any], *args: Any, **kwargs: Any) -> str:
        """Render the stage's prompt, serve it under the stage's SLO, return the generated text.

        Raises:
            RequestFailed: the engine failed this request (recorded as a failed stage).
        """
        if not isinstance(stage, Stage):
            raise ProgramError(
                f"ctx.run expects a @stage, got {type(stage).__name__}",
                field="stage",
                code="run-not-stage",
            )
        spec = stage.spec
        prompt = stage(*args, **kwargs)
        iteration = self._iterations[spec.name]
        self._iterations[spec.name] += 1
        prompt_tokens = self._engine.count_prompt_tokens(
            prompt, use_chat_template=spec.use_chat_template
        )
        ttft_budget_ms = spec.slo.resolve_ttft_ms(self._engine.isolated_prefill_ms(prompt_tokens))
        tpot_budget_ms = spec.slo.resolve_tpot_ms(
            self._engine.lone_decode_ms(prompt_tokens + spec.max_tokens)
        )
        request = GenerationRequest(
            request_id=f"{self.program_id}:{spec.name}:{iteration}",
            prompt=prompt,
            max_tokens=spec.max_tokens,
            ttft_ms=ttft_budget_ms,
            tpot_ms=tpot_budget_ms,
            program_id=self.program_id,
            stage=spec.name,
            tier=spec.tier,
            temperature=spec.temperature,
            ignore_eos=self._ignore_eos,
            use_chat_template=spec.use_chat_template,
        )
        submitted_s = self._now_s()
        record = StageRecord(
            program_id=self.program_id,
            stage=spec.name,
            iteration=iteration,
            tier=spec.tier,
            request_id=request.request_id,
            ttft_budget_ms=ttft_budget_ms,
            tpot_budget_ms=tpot_budget_ms,
            prompt_tokens=prompt_tokens,
            submitted_ms=(submitted_s - self._run_started_s) * 1e3,
        )
        self.records.append(record)
        pieces: list[str] = []
        deltas = measured_stream(
            self._engine,
            request,
            record,
            now_s=self._now_s,
            submitted_s=submitted_s,
            on_event=self._on_event,
        )
        # aclosing: if the loop body raises, the request is aborted at once rather than
        # whenever the generator is collected.
        async with aclosing(deltas):
            async for delta in deltas:
                pieces.append(delta.text)
        return "".join(pieces)

    def _emit(self, event: ProgramEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

"""`@agent`: an async function that composes stages with ordinary Python control flow."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, overload

import networkx as nx

from agentflow.errors import ProgramError
from agentflow.program.graph import build_stage_graph
from agentflow.program.stage import Stage

if TYPE_CHECKING:
    from agentflow.runtime.context import Context

__all__ = ["Agent", "agent"]

AgentFn = Callable[..., Awaitable[Any]]


class Agent:
    """A validated program: its function, inputs, stages and stage graph."""

    def __init__(
        self,
        fn: AgentFn,
        *,
        name: str,
        stages: tuple[Stage[...], ...],
        extra_inputs: tuple[str, ...],
        deadline_ms: float | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.stages = stages
        self.deadline_ms = deadline_ms
        params = list(inspect.signature(fn).parameters)
        if not params:
            raise ProgramError(
                "the agent function must take the context as its first parameter",
                stage=name,
                field="ctx",
                code="agent-signature",
            )
        self.inputs: tuple[str, ...] = tuple(params[1:])
        self.extra_inputs = extra_inputs
        self.graph: nx.DiGraph = build_stage_graph(name, stages, (*self.inputs, *extra_inputs))
        self.__doc__ = fn.__doc__

    @property
    def stage_by_name(self) -> dict[str, Stage[...]]:
        """Declared stages by name."""
        return {st.name: st for st in self.stages}

    async def __call__(self, ctx: Context, *args: Any, **kwargs: Any) -> Any:
        """Run the agent body in a runtime context."""
        return await self.fn(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<Agent {self.name} stages={[st.name for st in self.stages]}>"


@overload
def agent(fn: AgentFn, /) -> Agent: ...
@overload
def agent(
    *,
    name: str | None = None,
    stages: Iterable[Stage[...]] | None = None,
    extra_inputs: Iterable[str] = (),
    deadline_ms: float | None = None,
) -> Callable[[AgentFn], Agent]: ...
def agent(
    fn: AgentFn | None = None,
    /,
    *,
    name: str | None = None,
    stages: Iterable[Stage[...]] | None = None,
    extra_inputs: Iterable[str] = (),
    deadline_ms: float | None = None,
) -> Agent | Callable[[AgentFn], Agent]:
    """Declare an agent: `async def my_agent(ctx, question): ...`.

    Args:
        fn: the agent function (when used as a bare `@agent`).
        name: agent name (default: the function's name).
        stages: its stages; by default, every `Stage` the function body refers to by name.
        extra_inputs: values stages may take as inputs besides the agent's parameters and
            other stages' outputs (e.g. a tool observation).
        deadline_ms: optional end-to-end budget of one program instance.

    Raises:
        ProgramError: the function is not async, or the stage graph is invalid.
    """

    def decorate(func: AgentFn) -> Agent:
        agent_name = name or func.__name__
        if not inspect.iscoroutinefunction(func):
            raise ProgramError(
                "the agent must be an async function",
                stage=agent_name,
                field="fn",
                code="agent-not-async",
            )
        if deadline_ms is not None and not deadline_ms > 0:
            raise ProgramError(
                f"must be positive, got {deadline_ms!r}",
                stage=agent_name,
                field="deadline_ms",
                code="deadline-invalid",
            )
        found = tuple(stages) if stages is not None else _referenced_stages(func)
        return Agent(
            func,
            name=agent_name,
            stages=found,
            extra_inputs=tuple(extra_inputs),
            deadline_ms=deadline_ms,
        )

    return decorate(fn) if fn is not None else decorate


def _referenced_stages(fn: AgentFn) -> tuple[Stage[...], ...]:
    """Stages the function body names (globals and closure cells), in definition order."""
    closure = inspect.getclosurevars(fn)
    scope = {**closure.globals, **closure.nonlocals}
    seen: dict[str, Stage[...]] = {}
    for name in fn.__code__.co_names + fn.__code__.co_freevars:
        value = scope.get(name)
        if isinstance(value, Stage) and value.name not in seen:
            seen[value.name] = value
    return tuple(sorted(seen.values(), key=lambda st: st.fn.__code__.co_firstlineno))

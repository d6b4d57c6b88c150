"""`@stage`: a Python function that renders a prompt, plus the SLO and limits of its LLM call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentflow.errors import ProgramError
from agentflow.program.slo import SLO, parse_ttft

__all__ = ["Stage", "StageSpec", "stage"]

P = ParamSpec("P")


class StageSpec(BaseModel):
    """Everything the runtime and the scheduler need to know about one LLM stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    slo: SLO
    max_tokens: int = Field(gt=0)
    """Upper bound on output tokens: the planner reserves KV memory for it."""
    inputs: tuple[str, ...]
    """Parameter names: agent inputs, earlier stages' outputs, or declared extra values."""
    loop_inputs: tuple[str, ...] = ()
    """Inputs that come from a later iteration of a loop (feedback edges; may form cycles)."""
    tier: str
    """SLO class label carried to the scheduler (default: 'tpot<N>ms')."""
    temperature: float = Field(default=0.0, ge=0.0)
    use_chat_template: bool = True


class Stage(Generic[P]):
    """A declared LLM stage. Calling it renders the prompt; `ctx.run(stage, ...)` runs it."""

    def __init__(self, fn: Callable[P, str], spec: StageSpec) -> None:
        self.fn = fn
        self.spec = spec
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def name(self) -> str:
        """The stage's name (the function's name unless given)."""
        return self.spec.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Render the prompt for these inputs."""
        prompt = self.fn(*args, **kwargs)
        if not isinstance(prompt, str):
            raise ProgramError(
                f"must return the prompt as str, returned {type(prompt).__name__}",
                stage=self.name,
                field="return",
                code="stage-prompt-type",
            )
        return prompt

    def __repr__(self) -> str:
        slo = self.spec.slo
        return f"<Stage {self.name} ttft={slo.describe_ttft()} tpot={slo.tpot_ms:g} ms>"


def stage(
    *,
    ttft_ms: float | None = None,
    ttft: float | str | None = None,
    tpot_ms: float | None = None,
    max_tokens: int,
    name: str | None = None,
    tier: str | None = None,
    loop_inputs: tuple[str, ...] | list[str] = (),
    temperature: float = 0.0,
    use_chat_template: bool = True,
) -> Callable[[Callable[P, str]], Stage[P]]:
    """Declare an LLM stage. The decorated function returns the prompt.

    Args:
        ttft_ms: time-to-first-token budget in milliseconds.
        ttft: the same, as milliseconds or a slowdown of the isolated prefill time ("3x").
        tpot_ms: time-per-output-token budget in milliseconds.
        max_tokens: upper bound on generated tokens.
        name: stage name (default: the function's name).
        tier: SLO class label for the scheduler (default derived from tpot_ms).
        loop_inputs: inputs fed back from a later iteration (they may close a cycle).
        temperature: sampling temperature (0 = greedy).
        use_chat_template: send the prompt as a user turn when the model has a chat template.

    Raises:
        ProgramError: a budget is missing, non-positive or malformed.
    """

    def decorate(fn: Callable[P, str]) -> Stage[P]:
        stage_name = name or fn.__name__
        spec = _build_spec(
            stage_name,
            fn,
            ttft_ms=ttft_ms,
            ttft=ttft,
            tpot_ms=tpot_ms,
            max_tokens=max_tokens,
            tier=tier,
            loop_inputs=tuple(loop_inputs),
            temperature=temperature,
            use_chat_template=use_chat_template,
        )
        return Stage(fn, spec)

    return decorate


def _build_spec(stage_name: str, fn: Callable[..., Any], **decl: Any) -> StageSpec:
    if decl["ttft_ms"] is not None and decl["ttft"] is not None:
        raise ProgramError(
            "give ttft_ms or ttft, not both", stage=stage_name, field="ttft", code="slo-twice"
        )
    if decl["ttft_ms"] is None and decl["ttft"] is None:
        raise ProgramError(
            "missing TTFT budget: give ttft_ms=... or ttft='3x'",
            stage=stage_name,
            field="ttft_ms",
            code="slo-missing",
        )
    if decl["tpot_ms"] is None:
        raise ProgramError(
            "missing TPOT budget: give tpot_ms=...",
            stage=stage_name,
            field="tpot_ms",
            code="slo-missing",
        )
    try:
        ttft_ms, slowdown = parse_ttft(
            decl["ttft"] if decl["ttft"] is not None else decl["ttft_ms"]
        )
    except ValueError as exc:
        raise ProgramError(str(exc), stage=stage_name, field="ttft", code="slo-invalid") from exc
    inputs = tuple(inspect.signature(fn).parameters)
    tier = decl["tier"] or f"tpot{decl['tpot_ms']:g}ms"
    try:
        slo = SLO(ttft_ms=ttft_ms, ttft_slowdown=slowdown, tpot_ms=decl["tpot_ms"])
        return StageSpec(
            name=stage_name,
            slo=slo,
            max_tokens=decl["max_tokens"],
            inputs=inputs,
            loop_inputs=decl["loop_inputs"],
            tier=tier,
            temperature=decl["temperature"],
            use_chat_template=decl["use_chat_template"],
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        message = f"{error['msg']} (got {error.get('input')!r})"
        raise ProgramError(message, stage=stage_name, field=field, code="slo-invalid") from exc

"""`@stage`: a Python function that renders a prompt, plus the SLO and limits of its LLM call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentflow.errors import ProgramError
from agentflow.program.slo import SLO, parse_budget

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
        return f"<Stage {self.name} ttft={slo.describe_ttft()} tpot={slo.describe_tpot()}>"


def stage(
    *,
    ttft_ms: float | None = None,
    ttft: float | str | None = None,
    tpot_ms: float | None = None,
    tpot: float | str | None = None,
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
        tpot: the same, as milliseconds or a slowdown of one lone decode step ("3x").
        max_tokens: upper bound on generated tokens.
        name: stage name (default: the function's name).
        tier: SLO class label for the scheduler (default derived from the TPOT budget).
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
            tpot=tpot,
            max_tokens=max_tokens,
            tier=tier,
            loop_inputs=tuple(loop_inputs),
            temperature=temperature,
            use_chat_template=use_chat_template,
        )
        return Stage(fn, spec)

    return decorate


def _parse_pair(
    stage_name: str, decl: dict[str, Any], field: str
) -> tuple[float | None, float | None]:
    """One budget given as `<field>_ms=` or `<field>=`: exactly one of them, well formed."""
    in_ms, either = decl[f"{field}_ms"], decl[field]
    if in_ms is not None and either is not None:
        raise ProgramError(
            f"give {field}_ms or {field}, not both", stage=stage_name, field=field, code="slo-twice"
        )
    if in_ms is None and either is None:
        raise ProgramError(
            f"missing {field.upper()} budget: give {field}_ms=... or {field}='3x'",
            stage=stage_name,
            field=f"{field}_ms",
            code="slo-missing",
        )
    if isinstance(in_ms, str):
        raise ProgramError(
            f"{field}_ms must be a number of milliseconds, got {in_ms!r}"
            f" (a slowdown goes in {field}=, e.g. {field}='3x')",
            stage=stage_name,
            field=f"{field}_ms",
            code="slo-invalid",
        )
    try:
        return parse_budget(either if either is not None else in_ms, field=field)
    except ValueError as exc:
        raise ProgramError(str(exc), stage=stage_name, field=field, code="slo-invalid") from exc


def _build_spec(stage_name: str, fn: Callable[..., Any], **decl: Any) -> StageSpec:
    ttft_ms, ttft_slowdown = _parse_pair(stage_name, decl, "ttft")
    tpot_ms, tpot_slowdown = _parse_pair(stage_name, decl, "tpot")
    inputs = tuple(inspect.signature(fn).parameters)
    default_tier = f"tpot{tpot_ms:g}ms" if tpot_ms is not None else f"tpot{tpot_slowdown:g}x"
    tier = decl["tier"] or default_tier
    try:
        slo = SLO(
            ttft_ms=ttft_ms,
            ttft_slowdown=ttft_slowdown,
            tpot_ms=tpot_ms,
            tpot_slowdown=tpot_slowdown,
        )
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

"""The OpenAI-compatible wire format `agentflow serve` speaks, plus agentflow's SLO fields.

Clients send OpenAI requests; the SLO goes in the body beside them (with the OpenAI SDK:
`extra_body={"ttft_ms": 300, "tpot_ms": 40}`), as vLLM clients pass `priority`. Fields an
OpenAI client may send that this server cannot honour are refused with a 400 naming the field,
never silently dropped; fields it does not know are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentflow.program.slo import parse_budget

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "ProgramRunRequest",
]

PositiveMs = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_LABEL = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _SLOFields(BaseModel):
    """agentflow's extension: the request's latency budget and the labels it is counted under."""

    model_config = ConfigDict(extra="ignore")

    ttft_ms: PositiveMs | None = None
    """Time to first token, ms from arrival."""
    ttft: str | None = None
    """Or TTFT as a slowdown of the prompt's isolated prefill, e.g. "3x"."""
    tpot_ms: PositiveMs | None = None
    """Time per output token after the first, ms."""
    tpot: str | None = None
    """Or TPOT as a slowdown of one lone decode step at the request's longest context."""
    stage: _LABEL | None = None
    """Label for metrics and the scheduler (like a program's stage name)."""
    tier: _LABEL | None = None
    """SLO class label (e.g. 'tight', 'loose')."""

    @model_validator(mode="after")
    def _one_form_each(self) -> Self:
        for field in ("ttft", "tpot"):
            if getattr(self, f"{field}_ms") is not None and getattr(self, field) is not None:
                raise ValueError(f"give {field}_ms or {field} (a slowdown such as '3x'), not both")
            if getattr(self, field) is not None:
                parse_budget(getattr(self, field), field=field)  # raises naming the bad value
        return self


class _SamplingFields(_SLOFields):
    """The sampling options both endpoints share."""

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)] = 0.0
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = 1
    logprobs: Any = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("logprobs", "tools", "response_format", "logit_bias")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value not in (None, False, [], {}, {"type": "text"}):
            raise ValueError("not supported by this server")
        return value

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """`stop` as a tuple (OpenAI accepts one string or a list)."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        """Streaming: send a final chunk with token usage (`stream_options.include_usage`)."""
        return bool((self.stream_options or {}).get("include_usage", False))


class CompletionRequest(_SamplingFields):
    """`POST /v1/completions`: raw text in, text out (no chat template)."""

    prompt: Annotated[str, Field(min_length=1)]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("echo", "suffix")
    @classmethod
    def _unsupported_completion_option(cls, value: Any) -> Any:
        if value not in (None, False):
            raise ValueError("not supported by this server")
        return value

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only best_of=1 is supported")
        return value


class ChatMessage(BaseModel):
    """One turn of a conversation; content as a string or OpenAI's list of text parts."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        """The turn's text (text parts joined; other part types are refused)."""
        if isinstance(self.content, str):
            return self.content
        pieces = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"messages: only text content parts are supported, got {part!r}")
            pieces.append(part["text"])
        return "".join(pieces)


class ChatCompletionRequest(_SamplingFields):
    """`POST /v1/chat/completions`: a conversation in, the assistant's reply out."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]


class ProgramRunRequest(BaseModel):
    """`POST /v1/agents/{name}/runs`: one program instance's inputs."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any]
    stream: bool = False
    """Send the run's events (stages starting, their tokens, their records, tool calls, the
    result) as server-sent events instead of one JSON reply at the end."""

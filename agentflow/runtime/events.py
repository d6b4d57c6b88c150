"""What a program run reports as it goes: its start, stages starting, their tokens, their ends.

`Runtime.stream(agent, inputs)` yields these; `agentflow serve` sends them as server-sent
events. Each has a `kind` and a JSON form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from agentflow.runtime.records import ProgramResult, StageRecord, ToolRecord

__all__ = [
    "EventSink",
    "ProgramEvent",
    "ProgramFinished",
    "ProgramStarted",
    "StageDelta",
    "StageFinished",
    "StageStarted",
    "ToolCalled",
]


@dataclass(frozen=True, slots=True)
class ProgramStarted:
    """A program instance started; always the first event of a run."""

    kind: ClassVar[str] = "program_started"
    program_id: str
    agent: str
    inputs: dict[str, Any]
    deadline_ms: float | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "program_id": self.program_id,
            "agent": self.agent,
            "inputs": self.inputs,
            "deadline_ms": self.deadline_ms,
        }


@dataclass(frozen=True, slots=True)
class StageStarted:
    """A stage's request was submitted to the engine under its SLO."""

    kind: ClassVar[str] = "stage_started"
    program_id: str
    stage: str
    iteration: int
    request_id: str
    tier: str
    ttft_budget_ms: float
    tpot_budget_ms: float
    prompt_tokens: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "program_id": self.program_id,
            "stage": self.stage,
            "iteration": self.iteration,
            "request_id": self.request_id,
            "tier": self.tier,
            "ttft_budget_ms": self.ttft_budget_ms,
            "tpot_budget_ms": self.tpot_budget_ms,
            "prompt_tokens": self.prompt_tokens,
        }


@dataclass(frozen=True, slots=True)
class StageDelta:
    """New output of a running stage."""

    kind: ClassVar[str] = "stage_delta"
    program_id: str
    stage: str
    request_id: str
    text: str
    num_tokens: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "program_id": self.program_id,
            "stage": self.stage,
            "request_id": self.request_id,
            "text": self.text,
            "num_tokens": self.num_tokens,
        }


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage call reached a terminal state; its record is complete."""

    kind: ClassVar[str] = "stage_finished"
    record: StageRecord

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the stage record."""
        return self.record.to_json()


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """A tool call returned (successfully or not)."""

    kind: ClassVar[str] = "tool_called"
    record: ToolRecord

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the tool record."""
        return self.record.to_json()


@dataclass(frozen=True, slots=True)
class ProgramFinished:
    """The program instance reached a terminal state; always the last event of a run."""

    kind: ClassVar[str] = "program_finished"
    result: ProgramResult

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the program's outcome."""
        return self.result.to_json()


ProgramEvent = (
    ProgramStarted | StageStarted | StageDelta | StageFinished | ToolCalled | ProgramFinished
)
EventSink = Callable[[ProgramEvent], None]
"""Receives a run's events as they happen; must not block."""

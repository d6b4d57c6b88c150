"""What a run reports: one record per stage call, one result per program instance."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "TERMINAL_PROGRAM_STATUSES",
    "ProgramResult",
    "ProgramStatus",
    "StageRecord",
    "ToolRecord",
]


class ProgramStatus(enum.StrEnum):
    """How a program instance ended (every instance ends in one of these)."""

    FINISHED = "finished"
    FAILED = "failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    MAX_ITERATIONS = "max_iterations"


TERMINAL_PROGRAM_STATUSES = frozenset(ProgramStatus)


@dataclass(slots=True)
class StageRecord:
    """One LLM stage call as measured at the client (the runtime)."""

    program_id: str
    stage: str
    iteration: int
    """0 for the first call of this stage in this program instance, then 1, 2, ..."""
    tier: str
    request_id: str
    ttft_budget_ms: float
    tpot_budget_ms: float
    prompt_tokens: int
    submitted_ms: float
    """When the request was submitted, in ms since the run started."""
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    """Mean time per output token after the first (None with fewer than two tokens)."""
    output_tokens: int = 0
    ttft_met: bool = False
    tpot_met: bool = False
    slo_met: bool = False
    best_effort: bool = False
    """The engine served it in the best-effort lane (no SLO guarantee; counts as a miss)."""
    lane: str | None = None
    """'admitted' or 'best_effort' as the engine reported it; None from an engine without
    admission control (stock vLLM policies)."""
    status: str = "running"
    """'finished' or 'failed' once the call is over."""
    finish_reason: str | None = None
    error: str | None = None
    token_times_ms: list[float] = field(default_factory=list, repr=False)
    """Arrival of each output token in ms since submission (not written to JSON)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (`agentflow run --json`): everything but per-token times."""
        data = asdict(self)
        del data["token_times_ms"]
        return data


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """One tool call made by a program instance."""

    program_id: str
    tool: str
    iteration: int
    ok: bool
    latency_ms: float
    attempts: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(slots=True)
class ProgramResult:
    """One program instance: its input, its output or error, and its stage records."""

    program_id: str
    agent: str
    inputs: dict[str, Any]
    status: ProgramStatus
    output: Any = None
    error: str | None = None
    latency_ms: float = 0.0
    stages: list[StageRecord] = field(default_factory=list)
    tools: list[ToolRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON form of the outcome (stage records are listed separately)."""
        return {
            "program_id": self.program_id,
            "agent": self.agent,
            "inputs": self.inputs,
            "status": str(self.status),
            "output": self.output,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }

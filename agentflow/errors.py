"""Every exception agentflow raises, rooted at `AgentflowError`.

AgentflowError
├── ProgramError        a program or stage declaration is invalid (bad input)
├── IterationLimit      a program's loop ran out of its declared iterations
├── ModelError          the model cannot be found, prepared or loaded
├── EngineError         the engine failed to start or failed while serving
│   └── RequestFailed   one request ended with an error (its program fails, others go on)
└── ConfigError         a runtime or CLI setting is invalid (bad input)
"""

from __future__ import annotations

__all__ = [
    "AgentflowError",
    "ConfigError",
    "EngineError",
    "IterationLimit",
    "ModelError",
    "ProgramError",
    "RequestFailed",
]


class AgentflowError(Exception):
    """Root of every agentflow error."""


class ProgramError(AgentflowError):
    """A program, agent or stage declaration is invalid. Unrecoverable: fix the program.

    Attributes:
        stage: the stage (or agent) the problem is in, if any.
        field: the declaration field that is wrong, if any.
        code: a stable, machine-readable error code.
    """

    def __init__(
        self, message: str, *, stage: str | None = None, field: str | None = None, code: str
    ) -> None:
        where = ""
        if stage is not None:
            where = f"stage '{stage}'" + (f", field '{field}'" if field else "") + ": "
        super().__init__(where + message)
        self.stage = stage
        self.field = field
        self.code = code


class IterationLimit(AgentflowError):
    """A program loop reached its declared `max_iterations`. Ends that program instance only."""


class ConfigError(AgentflowError):
    """A runtime or command-line setting is invalid. Unrecoverable: fix the setting."""


class ModelError(AgentflowError):
    """The model cannot be found, prepared or loaded. Unrecoverable without user action."""


class EngineError(AgentflowError):
    """The engine failed to start or failed while serving. Unrecoverable for this engine."""


class RequestFailed(EngineError):
    """One engine request ended with an error. Recoverable: other requests continue.

    Attributes:
        request_id: the engine request that failed.
    """

    def __init__(self, message: str, *, request_id: str) -> None:
        super().__init__(f"request {request_id}: {message}")
        self.request_id = request_id

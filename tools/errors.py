"""Tool errors, rooted at `agentflow.errors.AgentflowError`.

AgentflowError
└── ToolError              anything that went wrong defining, serving or calling a tool
    ├── ToolNotFound       no known endpoint serves the tool (a programming error)
    ├── ToolArgumentError  the arguments do not match the tool's schema
    ├── ToolCallFailed     the tool ran and raised, or the server refused the call
    ├── ToolTimeout        the call did not finish within its time budget
    └── ToolServerError    the server is unreachable or answered with garbage

`ToolClient.call` raises only `ToolNotFound` (and `ToolError` for misuse such as calling a
closed client); every other failure becomes `ToolResult(ok=False, error=...)`, which the
runtime hands to the model as an observation.
"""

from __future__ import annotations

from agentflow.errors import AgentflowError

__all__ = [
    "ToolArgumentError",
    "ToolCallFailed",
    "ToolError",
    "ToolNotFound",
    "ToolServerError",
    "ToolTimeout",
]


class ToolError(AgentflowError):
    """Root of every tool error. Unrecoverable unless a subclass says otherwise.

    Attributes:
        code: a stable, machine-readable error code (e.g. ``"tool-timeout"``).
        is_retryable: whether calling again, unchanged, may succeed (connect errors,
            timeouts, 5xx answers). The client retries only idempotent tools.
    """

    default_code = "tool-error"

    def __init__(
        self, message: str, *, code: str | None = None, is_retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.is_retryable = is_retryable


class ToolNotFound(ToolError):
    """No endpoint serves a tool of this name. Unrecoverable: fix the tool name or endpoints."""

    default_code = "tool-not-found"


class ToolArgumentError(ToolError):
    """The arguments do not match the tool's parameter schema. Recoverable: fix the arguments.

    Attributes:
        field: the first offending argument (dotted path), if known.
    """

    default_code = "tool-invalid-arguments"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ToolCallFailed(ToolError):
    """The tool ran and raised, or the server refused the call. Recoverable: try another input."""

    default_code = "tool-failed"


class ToolTimeout(ToolError):
    """The call did not finish within its time budget. Recoverable: retry with more time."""

    default_code = "tool-timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, is_retryable=True)


class ToolServerError(ToolError):
    """The server is unreachable or broke the protocol. Recoverable: the server may come back."""

    default_code = "tool-server-error"

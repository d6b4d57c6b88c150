"""The outcome of one tool call, as the runtime records it and feeds it to the model."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ToolResult"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One finished tool call. A failed call is data (``ok=False``), never an exception."""

    name: str
    """The tool that was called."""
    ok: bool
    """True if the tool returned a value."""
    content: str
    """The value as text: a string result as is, anything else as JSON; empty when not ok."""
    error: str | None
    """What went wrong, in words a model can act on; None when ok."""
    latency_ms: float
    """Wall time of the whole call, retries and backoff included."""
    attempts: int
    """Number of requests sent (1 unless retried; 0 if no server could be reached to route)."""
    error_code: str | None = None
    """Stable code of the failure, e.g. ``tool-timeout``; None when ok."""

    def observation(self) -> str:
        """The text to show the model: the content, or the error prefixed with ``error:``."""
        return self.content if self.ok else f"error: {self.error}"

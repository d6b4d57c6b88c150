"""The seam between `ToolClient` and one endpoint's protocol (plain HTTP or MCP)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from tools.wire import ToolSpec

__all__ = ["ToolTransport"]


class ToolTransport(Protocol):
    """Talks to one tool endpoint. Implementations: `HttpTransport`, `McpTransport`.

    Contract: methods raise only `ToolError` subclasses, with ``is_retryable`` set for
    failures that may pass on a second try (connect errors, timeouts, 5xx, a crashed
    tool). They must not retry themselves, and must respect `timeout_s`; the client also
    cancels them at the deadline, so they must be safe to cancel at any await.
    """

    label: str
    """Names the endpoint in error messages."""

    async def list_tools(self, timeout_s: float) -> list[ToolSpec]:
        """Every tool the endpoint serves."""
        ...

    async def call(self, name: str, arguments: Mapping[str, Any], timeout_s: float) -> str:
        """Call one tool; return its result as text (JSON unless the tool returned a string)."""
        ...

    async def aclose(self) -> None:
        """Release sessions and subprocesses; the transport is unusable afterwards."""
        ...

"""Settings of a `ToolClient`: default timeout, connection pool, retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.retry import RetryPolicy

__all__ = ["ToolClientConfig"]


class ToolClientConfig(BaseModel):
    """How a `ToolClient` connects, times out and retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_timeout_s: float = Field(default=30.0, gt=0)
    """Deadline of a call that passes no ``timeout_s`` (retries included)."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Cap on opening a TCP connection or starting an MCP session."""
    max_connections: int = Field(default=64, ge=1)
    """Pool size: concurrent HTTP connections across all HTTP endpoints."""
    max_keepalive_connections: int = Field(default=16, ge=0)
    """Idle connections kept open for reuse."""
    keepalive_expiry_s: float = Field(default=30.0, gt=0)
    """How long an idle pooled connection is kept."""
    close_timeout_s: float = Field(default=3.0, gt=0)
    """How long closing waits for MCP sessions (and stdio servers) to end cleanly."""
    retry: RetryPolicy = RetryPolicy()

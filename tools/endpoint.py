"""Where tools live: HTTP tool servers, MCP servers over Streamable HTTP, MCP servers over stdio."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Endpoint", "HttpEndpoint", "McpHttpEndpoint", "McpStdioEndpoint"]


class HttpEndpoint(BaseModel):
    """A plain HTTP JSON tool server (`tools.http_server`): ``GET /tools``, ``POST /tools/NAME``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["http"] = "http"
    url: str = Field(min_length=1)
    """Base URL, e.g. ``http://127.0.0.1:8001``."""

    def label(self) -> str:
        """How errors name this endpoint."""
        return self.url


class McpHttpEndpoint(BaseModel):
    """An MCP server reached over Streamable HTTP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mcp-http"] = "mcp-http"
    url: str = Field(min_length=1)
    """The MCP endpoint URL, e.g. ``http://127.0.0.1:8002/mcp``."""

    def label(self) -> str:
        """How errors name this endpoint."""
        return f"mcp {self.url}"


class McpStdioEndpoint(BaseModel):
    """An MCP server the client starts as a subprocess and talks to over stdin/stdout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mcp-stdio"] = "mcp-stdio"
    command: str = Field(min_length=1)
    """The executable, e.g. ``sys.executable``."""
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    """Extra environment variables (the MCP SDK passes only a safe subset of ours)."""
    cwd: str | None = None
    """Working directory of the subprocess."""

    def label(self) -> str:
        """How errors name this endpoint."""
        return "mcp stdio: " + " ".join([self.command, *self.args])


Endpoint = Annotated[HttpEndpoint | McpHttpEndpoint | McpStdioEndpoint, Field(discriminator="kind")]
"""Any tool endpoint; parse one from config with ``TypeAdapter(Endpoint)``."""

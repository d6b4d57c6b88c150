"""MCP tool server: serves a `ToolSet` with the `mcp` SDK over Streamable HTTP or stdio.

Tool failures come back as ``isError`` results whose ``structuredContent`` is
``{"error": ..., "code": ..., "is_retryable": ...}``, so `ToolClient` can tell a bad argument
(never retried) from a crash (retried for idempotent tools). Each tool advertises
``annotations.idempotentHint``. Run ``python -m tools.mcp_server --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from starlette.types import ASGIApp

from tools._cli import add_toolset_arguments, toolset_from_args
from tools.disconnect import CancelOnDisconnect
from tools.errors import ToolError
from tools.registry import Tool, ToolSet
from tools.serving import running_app, serve_app
from tools.wire import content_text

__all__ = [
    "MCP_PATH",
    "create_mcp_app",
    "create_mcp_server",
    "main",
    "running_mcp_server",
    "serve_mcp_http",
    "serve_mcp_stdio",
]

MCP_PATH = "/mcp"
"""Where the Streamable HTTP app listens."""


def create_mcp_server(toolset: ToolSet, *, name: str = "agentflow-tools") -> Server[Any]:
    """Build a low-level MCP server whose ``tools/list`` and ``tools/call`` serve `toolset`."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_mcp_tool(item) for item in toolset])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            value = await toolset.call(params.name, params.arguments or {})
        except ToolError as exc:
            return types.CallToolResult(
                content=[types.TextContent(text=str(exc))],
                structured_content={
                    "error": str(exc),
                    "code": exc.code,
                    "is_retryable": exc.is_retryable,
                },
                is_error=True,
            )
        return types.CallToolResult(content=[types.TextContent(text=content_text(value))])

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def create_mcp_app(toolset: ToolSet, *, host: str = "127.0.0.1") -> ASGIApp:
    """Build the Streamable HTTP ASGI app (stateless, JSON responses) at `MCP_PATH`.

    Args:
        toolset: the tools to serve.
        host: the interface it will be bound to; on loopback the SDK also turns on
            DNS-rebinding protection.
    """
    server = create_mcp_server(toolset)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host
    )
    return CancelOnDisconnect(app)


async def serve_mcp_http(toolset: ToolSet, host: str = "127.0.0.1", port: int = 8002) -> None:
    """Serve `toolset` over MCP Streamable HTTP at ``http://HOST:PORT/mcp`` until interrupted."""
    await serve_app(create_mcp_app(toolset, host=host), host=host, port=port)


async def serve_mcp_stdio(toolset: ToolSet) -> None:
    """Serve `toolset` over MCP stdio (this process's stdin/stdout) until stdin closes."""
    server = create_mcp_server(toolset)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


@contextlib.asynccontextmanager
async def running_mcp_server(
    toolset: ToolSet, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `toolset` over Streamable HTTP in the background; yield the MCP URL.

    The URL (``http://127.0.0.1:PORT/mcp``) is what `McpHttpEndpoint` takes.
    """
    async with running_app(create_mcp_app(toolset, host=host), host=host, port=port) as url:
        yield url + MCP_PATH


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tools.mcp_server --transport stdio|http [--port N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.mcp_server", description="Serve tools over MCP."
    )
    add_toolset_arguments(parser)
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (http)")
    parser.add_argument("--port", type=int, default=8002, help="TCP port (http)")
    args = parser.parse_args(argv)
    toolset = toolset_from_args(parser, args)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutdown
        if args.transport == "stdio":
            anyio.run(serve_mcp_stdio, toolset)
        else:
            anyio.run(serve_mcp_http, toolset, args.host, args.port)
    return 0


def _mcp_tool(item: Tool[..., Any]) -> types.Tool:
    return types.Tool(
        name=item.name,
        description=item.description,
        input_schema=dict(item.input_schema),
        annotations=types.ToolAnnotations(idempotent_hint=item.idempotent),
    )


if __name__ == "__main__":
    sys.exit(main())

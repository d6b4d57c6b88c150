"""Plain HTTP JSON tool server: ``GET /tools`` lists a `ToolSet`, ``POST /tools/{name}`` calls one.

Replies to a call are ``{"ok": true, "content": ...}`` (200) or
``{"ok": false, "error": "...", "code": "..."}`` with status 404 (unknown tool),
422 (bad arguments), 400 (the tool refused the input), 500 (the tool raised) or
503 (the tool's own backend is unavailable). Run ``python -m tools.http_server --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tools._cli import add_toolset_arguments, toolset_from_args
from tools.disconnect import CancelOnDisconnect
from tools.errors import ToolArgumentError, ToolError, ToolNotFound, ToolServerError
from tools.registry import ToolSet
from tools.serving import running_app, serve_app
from tools.wire import CallReply, ToolListing

__all__ = ["create_http_app", "main", "running_http_server", "serve_http"]


def create_http_app(toolset: ToolSet) -> ASGIApp:
    """Build the ASGI app serving `toolset` (calls are cancelled if the client hangs up)."""

    async def health(request: Request) -> Response:
        return _json(200, {"ok": True, "num_tools": len(toolset)})

    async def list_tools(request: Request) -> Response:
        return _json(200, ToolListing(tools=toolset.specs()).model_dump(mode="json"))

    async def call_tool(request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        try:
            arguments = json.loads(body) if body.strip() else {}
            value = await toolset.call(name, arguments)
        except json.JSONDecodeError as exc:
            reply = CallReply(ok=False, error=f"body is not JSON: {exc}", code="bad-request")
            return _reply(400, reply)
        except ToolError as exc:
            return _reply(_status_for(exc), CallReply(ok=False, error=str(exc), code=exc.code))
        return _reply(200, CallReply(ok=True, content=value))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/tools", list_tools, methods=["GET"]),
        Route("/tools/{name}", call_tool, methods=["POST"]),
    ]
    return CancelOnDisconnect(Starlette(routes=routes))


async def serve_http(toolset: ToolSet, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Serve `toolset` over HTTP until interrupted."""
    await serve_app(create_http_app(toolset), host=host, port=port)


@contextlib.asynccontextmanager
async def running_http_server(
    toolset: ToolSet, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `toolset` in the background; yield the base URL for an `HttpEndpoint`.

    Example:
        ``async with running_http_server(builtin_toolset()) as url: ...``
    """
    async with running_app(create_http_app(toolset), host=host, port=port) as url:
        yield url


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tools.http_server --tools calculator,search --port 8001``."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.http_server", description="Serve tools over plain HTTP JSON."
    )
    add_toolset_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8001, help="TCP port")
    args = parser.parse_args(argv)
    toolset = toolset_from_args(parser, args)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutdown
        anyio.run(serve_http, toolset, args.host, args.port)
    return 0


def _status_for(exc: ToolError) -> int:
    if isinstance(exc, ToolNotFound):
        return 404
    if isinstance(exc, ToolArgumentError):
        return 422
    if isinstance(exc, ToolServerError):
        return 503
    return 500 if exc.is_retryable else 400


def _reply(status: int, reply: CallReply) -> Response:
    # NOTE: pydantic's JSON encoder turns NaN/inf into null instead of failing the reply.
    body = reply.model_dump_json(exclude_none=True)
    return Response(body, status_code=status, media_type="application/json")


def _json(status: int, payload: object) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


if __name__ == "__main__":
    sys.exit(main())

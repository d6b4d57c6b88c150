"""Run an ASGI app with uvicorn: in the foreground (CLI) or in the background on a free port."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import anyio
import uvicorn
from starlette.types import ASGIApp

from tools.errors import ToolServerError

__all__ = ["running_app", "serve_app"]

_STARTUP_POLL_S = 0.005


async def serve_app(app: ASGIApp, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve `app` until interrupted (Ctrl-C or SIGTERM shut it down gracefully).

    Args:
        app: the ASGI application.
        host: interface to bind, e.g. ``127.0.0.1`` or ``0.0.0.0``.
        port: TCP port to bind.
        log_level: uvicorn's log level.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="auto")
    await uvicorn.Server(config).serve()


@contextlib.asynccontextmanager
async def running_app(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, shutdown_timeout_s: float = 1.0
) -> AsyncIterator[str]:
    """Serve `app` in the background of the current (asyncio) event loop.

    The socket is bound before the server starts, so ``port=0`` picks a free port with no
    race. On exit the server stops accepting, lets running requests finish for up to
    `shutdown_timeout_s`, then cancels them.

    Args:
        app: the ASGI application.
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        shutdown_timeout_s: grace period for running requests at shutdown.

    Yields:
        The base URL, e.g. ``http://127.0.0.1:43117``.

    Raises:
        ToolServerError: the server failed to start.
    """
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=max(1, round(shutdown_timeout_s)),
    )
    server = _BackgroundServer(config)
    failures: list[BaseException] = []

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except (Exception, SystemExit) as exc:  # uvicorn exits the process on startup failure
            failures.append(exc)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(serve)
        while not server.started:
            if failures:
                sock.close()
                raise ToolServerError(f"server on {host}:{bound_port} failed to start: {failures}")
            await anyio.sleep(_STARTUP_POLL_S)
        url_host = f"[{host}]" if sock.family == socket.AF_INET6 else host
        try:
            yield f"http://{url_host}:{bound_port}"
        finally:
            server.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) lets asyncio set TCP_NODELAY on accepted connections; without it
    # every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _BackgroundServer(uvicorn.Server):
    """A uvicorn server that leaves the host program's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # NOTE: uvicorn swaps SIGINT/SIGTERM handlers while serving and restores them at the
        # end; two overlapping background servers would restore them out of order.
        yield

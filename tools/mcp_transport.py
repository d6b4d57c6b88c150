"""`ToolTransport` for MCP servers (Streamable HTTP or stdio), over the `mcp` SDK's `Client`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tools.endpoint import McpHttpEndpoint, McpStdioEndpoint
from tools.errors import ToolArgumentError, ToolCallFailed, ToolError, ToolServerError
from tools.wire import ToolSpec

__all__ = ["McpTransport"]

_CONNECTION_LOST = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    httpx2.TransportError,
    OSError,
)
_MAX_LIST_PAGES = 100


class McpTransport:
    """Keeps one MCP session per endpoint open, reconnecting when it breaks.

    NOTE(tools): an `mcp.Client` must be entered and exited in the same task, but calls
    arrive from many tasks; so each session lives in a task of the owning `ToolClient`'s
    task group (`_Session.run`), and calls share it (MCP multiplexes requests). Time limits
    come from the caller cancelling the call; the session itself has no read timeout.
    """

    def __init__(
        self,
        endpoint: McpHttpEndpoint | McpStdioEndpoint,
        task_group: TaskGroup,
        http: httpx2.AsyncClient | None,
        *,
        connect_timeout_s: float,
        close_timeout_s: float,
    ) -> None:
        self.label = endpoint.label()
        self._endpoint = endpoint
        self._task_group = task_group
        self._http = http
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._session: _Session | None = None
        self._is_closed = False

    async def list_tools(self, timeout_s: float) -> list[ToolSpec]:
        """``tools/list``, following pagination."""
        session, client = await self._connect()
        specs: list[ToolSpec] = []
        cursor: str | None = None
        with self._translate_errors(session):
            for _ in range(_MAX_LIST_PAGES):
                page = await client.list_tools(cursor=cursor)
                specs.extend(_spec_from_mcp(item) for item in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return specs

    async def call(self, name: str, arguments: Mapping[str, Any], timeout_s: float) -> str:
        """``tools/call``; an ``isError`` result becomes a `ToolError`."""
        session, client = await self._connect()
        with self._translate_errors(session):
            result = await client.call_tool(name, dict(arguments))
        if result.is_error:
            raise _tool_error(result)
        return _result_text(result)

    async def aclose(self) -> None:
        """End the session (and stop a stdio server) within the close timeout."""
        self._is_closed = True
        if self._session is not None:
            await self._session.close(self._close_timeout_s)

    async def _connect(self) -> tuple[_Session, Client]:
        """The current session and its client, starting a session if there is none."""
        if self._is_closed:
            raise ToolError(f"{self.label}: transport is closed", code="tool-client-closed")
        session = self._session
        if session is None or session.is_finished:
            session = _Session(self._new_client, self.label)
            self._session = session
            self._task_group.start_soon(session.run, self._connect_timeout_s)
        return session, await session.wait_ready()

    def _new_client(self) -> Client:
        endpoint = self._endpoint
        if isinstance(endpoint, McpHttpEndpoint):
            transport = streamable_http_client(endpoint.url, http_client=self._http)
            return Client(transport, cache=None)
        parameters = StdioServerParameters(
            command=endpoint.command, args=list(endpoint.args), env=endpoint.env, cwd=endpoint.cwd
        )
        return Client(parameters, cache=None)

    @contextlib.contextmanager
    def _translate_errors(self, session: _Session) -> Iterator[None]:
        """Turn SDK and connection errors into `ToolError`s; let cancellation through."""
        try:
            yield
        except ToolError:
            raise
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                self._forget(session)
            retryable = exc.code in (types.INTERNAL_ERROR, types.CONNECTION_CLOSED)
            raise ToolServerError(
                f"{self.label}: MCP error {exc.code}: {exc.message}", is_retryable=retryable
            ) from exc
        except Exception as exc:
            if not (isinstance(exc, _CONNECTION_LOST) or _is_group_of(exc, _CONNECTION_LOST)):
                raise ToolServerError(f"{self.label}: {_describe(exc)}") from exc
            self._forget(session)
            raise ToolServerError(
                f"{self.label}: connection lost: {_describe(exc)}", is_retryable=True
            ) from exc

    def _forget(self, session: _Session) -> None:
        """Drop a session whose connection broke, so the next call starts a new one."""
        session.stop()
        if self._session is session:
            self._session = None


class _Session:
    """One `mcp.Client`, entered and exited inside its own task."""

    def __init__(self, new_client: Callable[[], Client], label: str) -> None:
        self._new_client = new_client
        self._label = label
        self._client: Client | None = None
        self._error: BaseException | None = None
        self._is_ready = anyio.Event()
        self._is_stopping = anyio.Event()
        self._is_done = anyio.Event()
        self._scope = anyio.CancelScope()
        self.is_finished = False

    async def run(self, connect_timeout_s: float) -> None:
        """Connect (within the timeout), serve until stopped, then disconnect."""
        try:
            with self._scope:
                self._scope.deadline = anyio.current_time() + connect_timeout_s
                if self._is_stopping.is_set():
                    return
                async with self._new_client() as client:
                    self._scope.deadline = math.inf
                    self._client = client
                    self._is_ready.set()
                    await self._is_stopping.wait()
            if self._client is None and self._error is None:
                self._error = TimeoutError(f"no MCP session within {connect_timeout_s:g} s")
        except Exception as exc:  # a failed or broken session must not crash the task group
            self._error = exc
        finally:
            self.is_finished = True
            self._client = None
            self._is_ready.set()
            self._is_done.set()

    async def wait_ready(self) -> Client:
        """The connected client.

        Raises:
            ToolServerError: the session could not be opened (retryable).
        """
        await self._is_ready.wait()
        if self._client is None:
            reason = _describe(self._error) if self._error else "session closed"
            raise ToolServerError(f"cannot connect to {self._label}: {reason}", is_retryable=True)
        return self._client

    def stop(self) -> None:
        """Ask the session to end (non-blocking)."""
        self._is_stopping.set()

    async def close(self, timeout_s: float) -> None:
        """End the session cleanly, or cancel it after `timeout_s`."""
        self.stop()
        with anyio.move_on_after(timeout_s):
            await self._is_done.wait()
        self._scope.cancel()


def _spec_from_mcp(item: types.Tool) -> ToolSpec:
    annotations = item.annotations
    return ToolSpec(
        name=item.name,
        description=item.description or "",
        input_schema=item.input_schema,
        idempotent=bool(annotations and annotations.idempotent_hint),
    )


def _result_text(result: types.CallToolResult) -> str:
    parts = [
        block.text if isinstance(block, types.TextContent) else f"[{block.type} content]"
        for block in result.content
    ]
    return "\n".join(parts)


def _tool_error(result: types.CallToolResult) -> ToolError:
    """Rebuild the error a `tools.mcp_server` sent; foreign servers' errors are not retried."""
    message = _result_text(result) or "tool failed"
    details = result.structured_content
    if not isinstance(details, dict):
        return ToolCallFailed(message)
    code = details.get("code")
    if code == ToolArgumentError.default_code:
        return ToolArgumentError(message)
    return ToolCallFailed(
        message,
        code=code if isinstance(code, str) else None,
        is_retryable=details.get("is_retryable") is True,
    )


def _is_group_of(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    if not isinstance(exc, BaseExceptionGroup):
        return False
    return all(isinstance(e, kinds) or _is_group_of(e, kinds) for e in exc.exceptions)


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the first leaf of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"

"""`ToolClient`: the runtime's way to discover and call tools on HTTP and MCP tool servers."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import httpx2
from anyio.abc import TaskGroup

from tools.config import ToolClientConfig
from tools.endpoint import Endpoint, HttpEndpoint, McpHttpEndpoint, McpStdioEndpoint
from tools.errors import ToolError, ToolNotFound, ToolServerError, ToolTimeout
from tools.http_transport import HttpTransport
from tools.mcp_transport import McpTransport
from tools.result import ToolResult
from tools.transport import ToolTransport
from tools.wire import ToolSpec

__all__ = ["ToolClient"]

_logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Progress:
    """How far one call got (survives the call being cut off at its deadline)."""

    num_attempts: int = 0


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a tool is served."""

    spec: ToolSpec
    transport: ToolTransport


class ToolClient:
    """Discovers tools on a list of endpoints and calls them with deadlines and retries.

    Use it as ``async with ToolClient([...]) as tools:``; leaving the block closes the
    pooled HTTP connections, the MCP sessions, and any stdio server it started. Tools are
    discovered lazily on first use (or with `list_tools`); if two endpoints serve the same
    name, the earlier endpoint wins.

    Example:
        ``result = await tools.call("calculator", {"expression": "2 + 2"}, timeout_s=0.5)``
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        config: ToolClientConfig | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        """Create a closed client; enter it with ``async with`` before calling.

        Args:
            endpoints: tool servers, in priority order.
            config: timeouts, pool size and retry policy.
            seed: seeds the backoff jitter (for reproducible tests).
        """
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        self.config = config or ToolClientConfig()
        self._rng = random.Random(seed)
        self._stack: AsyncExitStack | None = None
        self._transports: list[ToolTransport] = []
        self._undiscovered: list[ToolTransport] = []
        self._discovery_error_by_label: dict[str, str] = {}
        self._route_by_name: dict[str, _Route] = {}
        self._discovery_lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise ToolError("ToolClient is already open", code="tool-client-reentered")
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(_http_pool(self.config))
            http_mcp = None
            if any(isinstance(endpoint, McpHttpEndpoint) for endpoint in self.endpoints):
                http_mcp = await stack.enter_async_context(_mcp_http_pool(self.config))
            task_group = await stack.enter_async_context(anyio.create_task_group())
            self._transports = [
                _make_transport(endpoint, self.config, http, http_mcp, task_group)
                for endpoint in self.endpoints
            ]
            stack.push_async_callback(self._close_transports)
            self._undiscovered = list(self._transports)
            self._route_by_name.clear()
            self._discovery_error_by_label.clear()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, traceback)

    async def list_tools(self, *, timeout_s: float | None = None) -> list[ToolSpec]:
        """List every endpoint's tools again (refreshing the routing table).

        Raises:
            ToolServerError: an endpoint could not be listed; the message names each one.
        """
        self._check_open()
        budget_s = self.config.default_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget_s
        async with self._discovery_lock:
            self._undiscovered = list(self._transports)
            self._route_by_name.clear()
            await self._discover(deadline)
        if self._discovery_error_by_label:
            failures = "; ".join(self._discovery_error_by_label.values())
            raise ToolServerError(f"cannot list tools: {failures}", is_retryable=True)
        return [route.spec for route in self._route_by_name.values()]

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> ToolResult:
        """Call a tool and wait at most `timeout_s` (retries and backoff included).

        Idempotent tools are retried on retryable failures (connect errors, timeouts,
        5xx), with exponential backoff and jitter, while the deadline allows; 4xx answers
        and non-idempotent tools are never retried. Every failure of the tool or its server
        comes back as ``ok=False`` with an error a model can read.

        Args:
            name: the tool's name.
            arguments: its arguments (a JSON object).
            timeout_s: the deadline, e.g. the calling stage's remaining budget; defaults to
                ``config.default_timeout_s``. Zero or less fails at once with a timeout.

        Raises:
            ToolNotFound: every endpoint was listed and none serves `name`.
            ToolError: the client is not open (code ``tool-client-closed``).
        """
        self._check_open()
        budget_s = self.config.default_timeout_s if timeout_s is None else timeout_s
        started_s = time.monotonic()
        deadline = started_s + budget_s
        progress = _Progress()
        # Every step below stops at the deadline; this scope is the backstop against hangs.
        error: ToolError = ToolTimeout(f"tool '{name}' timed out after {budget_s:.3g} s")
        with anyio.move_on_after(max(budget_s, 0.0)):
            try:
                route = await self._route(name, deadline)
                content = await self._attempts(route, arguments or {}, deadline, progress)
                elapsed_ms = _elapsed_ms(started_s)
                return ToolResult(name, True, content, None, elapsed_ms, progress.num_attempts)
            except ToolNotFound:
                raise
            except ToolError as exc:
                error = exc
        return ToolResult(
            name=name,
            ok=False,
            content="",
            error=str(error),
            latency_ms=_elapsed_ms(started_s),
            attempts=progress.num_attempts,
            error_code=error.code,
        )

    async def _attempts(
        self, route: _Route, arguments: Mapping[str, Any], deadline: float, progress: _Progress
    ) -> str:
        """Send attempts until one succeeds, a failure is final, or time runs out.

        Raises:
            ToolError: the last attempt's failure.
        """
        policy = self.config.retry
        while True:
            progress.num_attempts += 1
            remaining_s = deadline - time.monotonic()
            attempt_s = min(remaining_s, policy.attempt_timeout_s or remaining_s)
            try:
                return await self._attempt(route, arguments, attempt_s)
            except ToolError as exc:
                if not (route.spec.idempotent and exc.is_retryable):
                    raise
                delay_s = policy.backoff_s(progress.num_attempts, self._rng)
                out_of_attempts = progress.num_attempts >= policy.max_attempts
                if out_of_attempts or time.monotonic() + delay_s >= deadline:
                    raise
                _logger.debug("retrying %s in %.3f s after: %s", route.spec.name, delay_s, exc)
            await anyio.sleep(delay_s)

    async def _attempt(self, route: _Route, arguments: Mapping[str, Any], timeout_s: float) -> str:
        name = route.spec.name
        if timeout_s <= 0:
            raise ToolTimeout(f"tool '{name}': no time left to call it")
        with anyio.move_on_after(timeout_s):
            return await route.transport.call(name, arguments, timeout_s)
        raise ToolTimeout(f"tool '{name}' timed out after {timeout_s:.3g} s")

    async def _route(self, name: str, deadline: float) -> _Route:
        """Find the endpoint serving `name`, listing not-yet-listed endpoints if needed."""
        route = self._route_by_name.get(name)
        if route is not None:
            return route
        with anyio.move_on_after(deadline - time.monotonic()) as scope:
            async with self._discovery_lock:
                await self._discover(deadline)
        if scope.cancelled_caught:
            raise ToolTimeout(f"tool '{name}': listing the endpoints' tools took too long")
        route = self._route_by_name.get(name)
        if route is not None:
            return route
        if self._discovery_error_by_label:
            failures = "; ".join(self._discovery_error_by_label.values())
            raise ToolServerError(f"tool '{name}' is unavailable: {failures}", is_retryable=True)
        available = ", ".join(self._route_by_name) or "none"
        raise ToolNotFound(f"no endpoint serves tool '{name}' (available: {available})")

    async def _discover(self, deadline: float) -> None:
        """List the tools of every endpoint not listed yet, concurrently. Caller holds the lock."""
        pending, self._undiscovered = self._undiscovered, []
        specs_by_transport: dict[ToolTransport, list[ToolSpec]] = {}

        async def discover_one(transport: ToolTransport) -> None:
            try:
                specs_by_transport[transport] = await self._list_with_retries(transport, deadline)
                self._discovery_error_by_label.pop(transport.label, None)
            except ToolError as exc:
                self._discovery_error_by_label[transport.label] = str(exc)
                self._undiscovered.append(transport)

        async with anyio.create_task_group() as task_group:
            for transport in pending:
                task_group.start_soon(discover_one, transport)
        # Endpoint order decides duplicate names, whatever order the listings came in.
        for transport in self._transports:
            for spec in specs_by_transport.get(transport, ()):
                self._route_by_name.setdefault(spec.name, _Route(spec, transport))

    async def _list_with_retries(self, transport: ToolTransport, deadline: float) -> list[ToolSpec]:
        policy = self.config.retry
        num_attempts = 0
        while True:
            num_attempts += 1
            remaining_s = deadline - time.monotonic()
            try:
                if remaining_s <= 0:
                    raise ToolTimeout(f"no time left to list tools on {transport.label}")
                with anyio.move_on_after(remaining_s):
                    return await transport.list_tools(remaining_s)
                raise ToolTimeout(f"{transport.label}: listing tools timed out")
            except ToolError as exc:
                delay_s = policy.backoff_s(num_attempts, self._rng)
                is_final = num_attempts >= policy.max_attempts or not exc.is_retryable
                if is_final or time.monotonic() + delay_s >= deadline:
                    raise
            await anyio.sleep(delay_s)

    async def _close_transports(self) -> None:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as task_group:
                for transport in self._transports:
                    task_group.start_soon(transport.aclose)

    def _check_open(self) -> None:
        if self._stack is None:
            raise ToolError(
                "ToolClient is not open; use 'async with ToolClient(...) as tools:'",
                code="tool-client-closed",
            )


def _http_pool(config: ToolClientConfig) -> httpx.AsyncClient:
    """The pooled client every plain-HTTP endpoint shares."""
    limits = httpx.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
        keepalive_expiry=config.keepalive_expiry_s,
    )
    return httpx.AsyncClient(limits=limits, timeout=config.default_timeout_s)


def _mcp_http_pool(config: ToolClientConfig) -> httpx2.AsyncClient:
    """The pooled client every MCP Streamable-HTTP endpoint shares (the mcp SDK uses httpx2)."""
    limits = httpx2.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
        keepalive_expiry=config.keepalive_expiry_s,
    )
    # No read timeout: calls are bounded by their own deadlines instead.
    return httpx2.AsyncClient(
        limits=limits, timeout=httpx2.Timeout(config.connect_timeout_s, read=None)
    )


def _make_transport(
    endpoint: Endpoint,
    config: ToolClientConfig,
    http: httpx.AsyncClient,
    http_mcp: httpx2.AsyncClient | None,
    task_group: TaskGroup,
) -> ToolTransport:
    match endpoint:
        case HttpEndpoint():
            return HttpTransport(endpoint, http, connect_timeout_s=config.connect_timeout_s)
        case McpHttpEndpoint() | McpStdioEndpoint():
            return McpTransport(
                endpoint,
                task_group,
                http_mcp,
                connect_timeout_s=config.connect_timeout_s,
                close_timeout_s=config.close_timeout_s,
            )


def _elapsed_ms(started_s: float) -> float:
    return (time.monotonic() - started_s) * 1000.0

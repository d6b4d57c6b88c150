"""`ToolTransport` for plain HTTP JSON tool servers (see `tools.http_server`), over httpx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from tools.endpoint import HttpEndpoint
from tools.errors import (
    ToolArgumentError,
    ToolCallFailed,
    ToolError,
    ToolServerError,
    ToolTimeout,
)
from tools.wire import CallReply, ToolListing, ToolSpec, content_text

__all__ = ["HttpTransport"]


class HttpTransport:
    """Calls an HTTP tool server through a shared, pooled `httpx.AsyncClient`."""

    def __init__(
        self, endpoint: HttpEndpoint, http: httpx.AsyncClient, *, connect_timeout_s: float
    ) -> None:
        self.label = endpoint.label()
        self._base_url = endpoint.url.rstrip("/")
        self._http = http
        self._connect_timeout_s = connect_timeout_s

    async def list_tools(self, timeout_s: float) -> list[ToolSpec]:
        """``GET /tools``."""
        response = await self._send("GET", "/tools", None, timeout_s)
        if response.status_code != 200:
            raise _status_error(self.label, response)
        try:
            return ToolListing.model_validate_json(response.content).tools
        except ValidationError as exc:
            raise ToolServerError(f"{self.label}: bad tool listing: {exc}") from exc

    async def call(self, name: str, arguments: Mapping[str, Any], timeout_s: float) -> str:
        """``POST /tools/{name}`` with the arguments as the JSON body."""
        path = f"/tools/{quote(name, safe='')}"
        response = await self._send("POST", path, dict(arguments), timeout_s)
        try:
            reply = CallReply.model_validate_json(response.content)
        except ValidationError:
            raise _status_error(self.label, response) from None
        if reply.ok and response.status_code == 200:
            return content_text(reply.content)
        raise _reply_error(reply, response.status_code)

    async def aclose(self) -> None:
        """Nothing to release: the pooled client belongs to the `ToolClient`."""

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float
    ) -> httpx.Response:
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, self._connect_timeout_s))
        try:
            return await self._http.request(
                method, self._base_url + path, json=body, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise ToolTimeout(
                f"{self.label}: no answer within {timeout_s:.3g} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ToolServerError(
                f"cannot reach tool server {self.label}: {type(exc).__name__}: {exc}",
                is_retryable=True,
            ) from exc


def _status_error(label: str, response: httpx.Response) -> ToolServerError:
    return ToolServerError(
        f"{label} answered HTTP {response.status_code}: {response.text[:200]!r}",
        is_retryable=response.status_code >= 500,
    )


def _reply_error(reply: CallReply, status_code: int) -> ToolError:
    message = reply.error or f"tool failed (HTTP {status_code})"
    if status_code == 422 or reply.code == ToolArgumentError.default_code:
        return ToolArgumentError(message)
    if status_code == 503:
        return ToolServerError(message, code=reply.code, is_retryable=True)
    return ToolCallFailed(message, code=reply.code, is_retryable=status_code >= 500)

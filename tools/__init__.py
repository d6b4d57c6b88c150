"""Agent tools: define them from Python functions, serve them (HTTP JSON or MCP), call them.

- `tool` / `Tool` / `ToolSet` (registry): typed functions become tools with JSON schemas.
- `tools.http_server`, `tools.mcp_server`: serve a `ToolSet` (CLI: ``python -m ...``).
- `ToolClient` (client): what the runtime uses; returns a `ToolResult` per call.
- `tools.builtin`: calculator, BM25 search, sandboxed python_eval.

Example:
    ```python
    from tools import ToolClient
    from tools.builtin import builtin_stdio_endpoint

    async with ToolClient([builtin_stdio_endpoint(docs_dir=docs)]) as tools:
        result = await tools.call("calculator", {"expression": "2 + 2"}, timeout_s=1.5)
        observation = result.observation()  # "4", or "error: ..." when not result.ok
    ```
"""

from __future__ import annotations

from tools.client import ToolClient
from tools.config import ToolClientConfig
from tools.endpoint import Endpoint, HttpEndpoint, McpHttpEndpoint, McpStdioEndpoint
from tools.errors import (
    ToolArgumentError,
    ToolCallFailed,
    ToolError,
    ToolNotFound,
    ToolServerError,
    ToolTimeout,
)
from tools.registry import Tool, ToolSet, tool
from tools.result import ToolResult
from tools.retry import RetryPolicy
from tools.wire import ToolSpec

__all__ = [
    "Endpoint",
    "HttpEndpoint",
    "McpHttpEndpoint",
    "McpStdioEndpoint",
    "RetryPolicy",
    "Tool",
    "ToolArgumentError",
    "ToolCallFailed",
    "ToolClient",
    "ToolClientConfig",
    "ToolError",
    "ToolNotFound",
    "ToolResult",
    "ToolServerError",
    "ToolSet",
    "ToolSpec",
    "ToolTimeout",
    "tool",
]

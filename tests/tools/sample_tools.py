"""Tools with known behaviour (slow, flaky, broken) for the tool-server tests.

Also served over stdio with
`python -m tools.mcp_server --toolset tests.tools.sample_tools:make_toolset`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from tools import McpStdioEndpoint, ToolSet, tool

REPO_ROOT = Path(__file__).resolve().parents[2]


class Boom(RuntimeError):
    pass


@dataclass
class CallLog:
    """What the sample tools saw, for assertions on the server side."""

    num_calls_by_tool: Counter[str] = field(default_factory=Counter)
    num_cancelled: int = 0
    client_ports: set[int] = field(default_factory=set)


def make_toolset(log: CallLog | None = None, *, num_failures: int = 2) -> ToolSet:
    log = log if log is not None else CallLog()

    @tool(idempotent=True)
    def add(a: int, b: int = 0) -> int:
        """Add two integers.

        Args:
            a: the first addend.
            b: the second addend.
        """
        log.num_calls_by_tool["add"] += 1
        return a + b

    @tool(idempotent=True)
    async def slow(delay_s: float) -> str:
        """Sleep, then answer."""
        log.num_calls_by_tool["slow"] += 1
        try:
            await anyio.sleep(delay_s)
        except anyio.get_cancelled_exc_class():
            log.num_cancelled += 1
            raise
        return f"slept {delay_s}"

    @tool(idempotent=True)
    def flaky(value: str) -> str:
        """Fail the first calls, then echo."""
        log.num_calls_by_tool["flaky"] += 1
        if log.num_calls_by_tool["flaky"] <= num_failures:
            raise Boom("transient failure")
        return value

    @tool
    def flaky_write(value: str) -> str:
        """Like flaky, but not idempotent: must never be retried."""
        log.num_calls_by_tool["flaky_write"] += 1
        if log.num_calls_by_tool["flaky_write"] <= num_failures:
            raise Boom("transient failure")
        return value

    @tool(idempotent=True)
    def broken() -> str:
        """Always fail."""
        log.num_calls_by_tool["broken"] += 1
        raise Boom("always broken")

    @tool(idempotent=True)
    def info(topic: str) -> dict[str, object]:
        """Answer with structured data."""
        return {"topic": topic, "sizes": [1, 2, 3]}

    return ToolSet([add, slow, flaky, flaky_write, broken, info])


def stdio_endpoint(*server_args: str) -> McpStdioEndpoint:
    """An MCP server the client starts itself, over stdio."""
    return McpStdioEndpoint(
        command=sys.executable,
        args=("-m", "tools.mcp_server", "--transport", "stdio", *server_args),
        cwd=str(REPO_ROOT),
    )


def make_crashing_toolset() -> ToolSet:
    """Sample tools plus one that kills its server process: serve it only in a subprocess."""

    @tool
    def crash() -> str:
        """Kill the server process."""
        os._exit(1)

    return ToolSet([*make_toolset(), crash])

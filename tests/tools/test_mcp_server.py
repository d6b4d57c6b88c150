"""The MCP tool server over Streamable HTTP (raw `mcp.Client`) and stdio (ToolClient)."""

import sys
import time

import pytest
from mcp import Client
from mcp_types import TextContent, ToolAnnotations

from tests.tools.sample_tools import stdio_endpoint
from tools import McpStdioEndpoint, RetryPolicy, ToolClient, ToolClientConfig
from tools.builtin import builtin_stdio_endpoint

pytestmark = pytest.mark.anyio


async def test_lists_tools_with_schema_and_idempotent_hint(mcp_url):
    async with Client(mcp_url) as client:
        listing = await client.list_tools()

    tools = {item.name: item for item in listing.tools}
    assert set(tools) == {"add", "slow", "flaky", "flaky_write", "broken", "info"}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a"]
    assert tools["add"].annotations == ToolAnnotations(idempotent_hint=True)
    assert tools["flaky_write"].annotations == ToolAnnotations(idempotent_hint=False)


async def test_call_returns_text_content(mcp_url):
    async with Client(mcp_url) as client:
        result = await client.call_tool("add", {"a": 20, "b": 22})

    assert not result.is_error
    assert result.content == [TextContent(text="42")]


@pytest.mark.parametrize(
    ("name", "arguments", "code", "is_retryable", "message"),
    [
        ("add", {"a": "x"}, "tool-invalid-arguments", False, "argument 'a'"),
        ("broken", {}, "tool-failed", True, "always broken"),
        ("nope", {}, "tool-not-found", False, "unknown tool 'nope'"),
    ],
)
async def test_errors_are_is_error_results_with_a_code(
    mcp_url, name, arguments, code, is_retryable, message
):
    async with Client(mcp_url) as client:
        result = await client.call_tool(name, arguments)

    assert result.is_error
    assert result.structured_content["code"] == code
    assert result.structured_content["is_retryable"] is is_retryable
    (block,) = result.content
    assert isinstance(block, TextContent) and message in block.text


async def test_stdio_server_lists_calls_retries_and_times_out():
    endpoint = stdio_endpoint("--toolset", "tests.tools.sample_tools:make_toolset")
    config = ToolClientConfig(retry=RetryPolicy(backoff_base_s=0.01), connect_timeout_s=20)
    async with ToolClient([endpoint], config) as tools:
        names = {spec.name for spec in await tools.list_tools()}
        added = await tools.call("add", {"a": 1, "b": 1})
        flaky = await tools.call("flaky", {"value": "ok"})
        started = time.monotonic()
        slow = await tools.call("slow", {"delay_s": 5}, timeout_s=0.3)
        slow_elapsed_s = time.monotonic() - started
        started = time.monotonic()
    close_elapsed_s = time.monotonic() - started

    assert "add" in names
    assert added.ok and added.content == "2"
    assert flaky.ok and flaky.attempts == 3
    assert not slow.ok and slow.error_code == "tool-timeout" and slow_elapsed_s < 2.0
    assert close_elapsed_s < config.close_timeout_s


async def test_builtin_tools_over_stdio_started_by_the_client(tmp_path):
    (tmp_path / "a.md").write_text("BM25 ranks passages by keyword relevance.")
    endpoint = builtin_stdio_endpoint(["calculator", "search"], docs_dir=tmp_path)
    async with ToolClient([endpoint]) as tools:
        calculated = await tools.call("calculator", {"expression": "6 * 7"})
        found = await tools.call("search", {"query": "keyword ranking"})

    assert calculated.ok and calculated.content == "42"
    assert found.ok and '"file": "a.md"' in found.content


async def test_stdio_server_that_dies_at_start_gives_ok_false_not_a_hang():
    endpoint = McpStdioEndpoint(command=sys.executable, args=("-c", "raise SystemExit(3)"))
    config = ToolClientConfig(connect_timeout_s=5, retry=RetryPolicy(max_attempts=1))
    async with ToolClient([endpoint], config) as tools:
        started = time.monotonic()
        result = await tools.call("anything", {}, timeout_s=10)

    assert not result.ok and result.error_code == "tool-server-error"
    assert "cannot connect to mcp stdio" in (result.error or "")
    assert time.monotonic() - started < 6


async def test_crashed_stdio_server_fails_the_call_and_is_restarted_for_the_next():
    endpoint = stdio_endpoint("--toolset", "tests.tools.sample_tools:make_crashing_toolset")
    async with ToolClient([endpoint]) as tools:
        crashed = await tools.call("crash", timeout_s=10)
        after = await tools.call("add", {"a": 2}, timeout_s=20)

    assert not crashed.ok and crashed.error_code == "tool-server-error"
    assert "Connection closed" in (crashed.error or "")
    assert after.ok and after.content == "2"

"""ToolClient against real HTTP and MCP Streamable-HTTP servers on loopback ports."""

import json
import socket
import time

import anyio
import pytest

from tools import (
    Endpoint,
    HttpEndpoint,
    McpHttpEndpoint,
    RetryPolicy,
    ToolClient,
    ToolClientConfig,
    ToolError,
    ToolNotFound,
)
from tools.http_server import create_http_app, running_http_server
from tools.mcp_server import running_mcp_server
from tools.serving import running_app

pytestmark = pytest.mark.anyio

SLACK_S = 1.5
"""Scheduling slack allowed past a deadline on a loaded 2-core CI box. The slow tool sleeps
5 s, so a timeout that did not fire still fails every check by far."""


def fast_retries(**overrides: float) -> ToolClientConfig:
    policy = {"max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05} | overrides
    return ToolClientConfig(retry=RetryPolicy(**policy), connect_timeout_s=2.0)


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_lists_tools_with_schemas_and_idempotency(endpoint):
    async with ToolClient([endpoint]) as tools:
        specs = {spec.name: spec for spec in await tools.list_tools()}

    assert set(specs) == {"add", "slow", "flaky", "flaky_write", "broken", "info"}
    assert specs["add"].input_schema["required"] == ["a"]
    assert specs["add"].input_schema["properties"]["a"]["type"] == "integer"
    assert specs["add"].idempotent
    assert not specs["flaky_write"].idempotent


async def test_calls_a_tool_and_reports_content_latency_attempts(endpoint):
    async with ToolClient([endpoint]) as tools:
        result = await tools.call("add", {"a": 2, "b": 40})
        structured = await tools.call("info", {"topic": "x"})

    assert result.ok and result.content == "42" and result.error is None
    assert result.attempts == 1 and 0 < result.latency_ms < 5000
    assert json.loads(structured.content) == {"topic": "x", "sizes": [1, 2, 3]}


async def test_bad_arguments_fail_clearly_naming_the_field_without_retry(endpoint, call_log):
    async with ToolClient([endpoint], fast_retries()) as tools:
        result = await tools.call("add", {"a": "not a number"})

    assert not result.ok and result.attempts == 1
    assert result.error_code == "tool-invalid-arguments"
    assert "argument 'a'" in (result.error or "")
    assert "integer" in (result.error or "")
    assert call_log.num_calls_by_tool["add"] == 0


async def test_timeout_gives_ok_false_within_the_budget(endpoint):
    async with ToolClient([endpoint]) as tools:
        started = time.monotonic()
        result = await tools.call("slow", {"delay_s": 5}, timeout_s=0.3)
        elapsed_s = time.monotonic() - started

    assert not result.ok and result.error_code == "tool-timeout"
    assert "timed out" in (result.error or "")
    assert 0.3 <= elapsed_s < 0.3 + SLACK_S
    assert result.attempts == 1


async def test_idempotent_tool_is_retried_after_server_errors(endpoint, call_log):
    async with ToolClient([endpoint], fast_retries()) as tools:
        result = await tools.call("flaky", {"value": "third time lucky"})

    assert result.ok and result.content == "third time lucky"
    assert result.attempts == 3
    assert call_log.num_calls_by_tool["flaky"] == 3


async def test_non_idempotent_tool_is_never_retried(endpoint, call_log):
    async with ToolClient([endpoint], fast_retries()) as tools:
        result = await tools.call("flaky_write", {"value": "x"})

    assert not result.ok and result.attempts == 1
    assert "transient failure" in (result.error or "")
    assert call_log.num_calls_by_tool["flaky_write"] == 1


async def test_retries_stop_after_max_attempts(endpoint, call_log):
    async with ToolClient([endpoint], fast_retries(max_attempts=4)) as tools:
        result = await tools.call("broken")

    assert not result.ok and result.attempts == 4
    assert "always broken" in (result.error or "")
    assert call_log.num_calls_by_tool["broken"] == 4


async def test_retries_stop_at_the_deadline(endpoint):
    config = fast_retries(max_attempts=100, backoff_base_s=0.2, backoff_max_s=0.2, jitter=0)
    async with ToolClient([endpoint], config) as tools:
        started = time.monotonic()
        result = await tools.call("broken", timeout_s=0.5)

    assert not result.ok and 1 < result.attempts <= 3
    assert time.monotonic() - started < 0.5 + SLACK_S


async def test_attempt_timeout_leaves_time_to_retry_a_slow_idempotent_tool(endpoint):
    async with ToolClient([endpoint], fast_retries(attempt_timeout_s=0.15)) as tools:
        result = await tools.call("slow", {"delay_s": 5}, timeout_s=2)

    assert not result.ok and result.error_code == "tool-timeout"
    assert result.attempts == 3


async def test_unknown_tool_name_raises_tool_not_found(endpoint):
    async with ToolClient([endpoint]) as tools:
        with pytest.raises(ToolNotFound, match=r"'nope'.*available: add"):
            await tools.call("nope", {})


async def test_concurrent_calls_run_in_parallel(endpoint):
    async with ToolClient([endpoint]) as tools:
        results = []

        async def call_one() -> None:
            results.append(await tools.call("slow", {"delay_s": 0.3}))

        started = time.monotonic()
        async with anyio.create_task_group() as task_group:
            for _ in range(10):
                task_group.start_soon(call_one)
        elapsed_s = time.monotonic() - started

    assert len(results) == 10 and all(result.ok for result in results)
    # Ten sequential calls take at least 3 s; a loaded 2-core CI box once needed 2.5 s for the
    # concurrent ten, so the bound only has to prove they overlapped.
    assert elapsed_s < 0.3 * 10 * 0.9


async def test_concurrent_http_calls_share_a_bounded_pool(toolset):
    client_ports: set[int] = set()
    app = create_http_app(toolset)

    async def recording_app(scope, receive, send):
        if scope["type"] == "http":
            client_ports.add(scope["client"][1])
        await app(scope, receive, send)

    config = ToolClientConfig(max_connections=3, max_keepalive_connections=3)
    async with (
        running_app(recording_app) as url,
        ToolClient([HttpEndpoint(url=url)], config) as tools,
    ):
        async with anyio.create_task_group() as task_group:
            for _ in range(12):
                task_group.start_soon(tools.call, "slow", {"delay_s": 0.05})
        ports_after_burst = set(client_ports)
        for value in range(5):
            assert (await tools.call("add", {"a": value})).ok

    assert 1 <= len(ports_after_burst) <= 3
    assert client_ports == ports_after_burst  # later calls reused pooled connections


async def test_unreachable_server_gives_ok_false_quickly():
    endpoints: list[Endpoint] = [
        HttpEndpoint(url=f"http://127.0.0.1:{closed_port()}"),
        McpHttpEndpoint(url=f"http://127.0.0.1:{closed_port()}/mcp"),
    ]
    async with ToolClient(endpoints, fast_retries()) as tools:
        started = time.monotonic()
        result = await tools.call("add", {"a": 1}, timeout_s=10)
        elapsed_s = time.monotonic() - started

    assert not result.ok and result.error_code == "tool-server-error"
    assert "ConnectError" in (result.error or "") and "127.0.0.1" in (result.error or "")
    assert elapsed_s < 3.0  # far below the 10 s budget: the refusal is not retried to the end


async def test_server_that_accepts_but_never_answers_does_not_hang_a_call():
    async def never_answer(stream):
        async with stream:
            await anyio.sleep(10)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(listener.serve, never_answer)
        endpoints = [HttpEndpoint(url=f"http://127.0.0.1:{port}")]
        async with ToolClient(endpoints) as tools:
            started = time.monotonic()
            result = await tools.call("add", {"a": 1}, timeout_s=0.4)
            elapsed_s = time.monotonic() - started
        task_group.cancel_scope.cancel()

    assert not result.ok and result.error_code == "tool-timeout"
    assert elapsed_s < 0.4 + SLACK_S


@pytest.mark.parametrize("protocol", ["http", "mcp-http"])
async def test_idempotent_call_survives_a_server_restart(protocol, toolset):
    serve = running_http_server if protocol == "http" else running_mcp_server
    make_endpoint = HttpEndpoint if protocol == "http" else McpHttpEndpoint

    async def serve_until(stop, port=0, *, task_status):
        async with serve(toolset, port=port) as url:
            task_status.started(url)
            await stop.wait()

    config = fast_retries(max_attempts=20, backoff_base_s=0.05, backoff_max_s=0.1)
    stop_first, stop_second = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as task_group:
        url = await task_group.start(serve_until, stop_first)
        port = int(url.split(":")[2].split("/")[0])
        async with ToolClient([make_endpoint(url=url)], config) as tools:
            await tools.list_tools()
            stop_first.set()
            await anyio.sleep(0.2)  # the server is down now

            async def restart_later() -> None:
                await anyio.sleep(0.3)
                await task_group.start(serve_until, stop_second, port)

            task_group.start_soon(restart_later)
            result = await tools.call("add", {"a": 5}, timeout_s=3)
        stop_second.set()

    assert result.ok and result.content == "5"
    assert result.attempts >= 2


async def test_server_stops_a_tool_whose_client_gave_up(endpoint, call_log):
    async with ToolClient([endpoint]) as tools:
        result = await tools.call("slow", {"delay_s": 5}, timeout_s=0.2)
        with anyio.fail_after(2):
            while call_log.num_cancelled == 0:
                await anyio.sleep(0.02)

    assert not result.ok
    assert call_log.num_cancelled == 1


async def test_earlier_endpoint_wins_a_duplicate_tool_name(call_log):
    from tests.tools.sample_tools import make_toolset

    other_log = type(call_log)()
    async with (
        running_http_server(make_toolset(call_log)) as first,
        running_http_server(make_toolset(other_log)) as second,
        ToolClient([HttpEndpoint(url=first), HttpEndpoint(url=second)]) as tools,
    ):
        assert (await tools.call("add", {"a": 1})).ok

    assert call_log.num_calls_by_tool["add"] == 1
    assert other_log.num_calls_by_tool["add"] == 0


async def test_no_budget_left_fails_at_once_without_calling(http_url, call_log):
    async with ToolClient([HttpEndpoint(url=http_url)]) as tools:
        await tools.list_tools()
        result = await tools.call("add", {"a": 1}, timeout_s=0)

    assert not result.ok and result.error_code == "tool-timeout"
    assert call_log.num_calls_by_tool["add"] == 0


async def test_calling_a_closed_client_is_a_programming_error(http_url):
    tools = ToolClient([HttpEndpoint(url=http_url)])
    with pytest.raises(ToolError, match="not open"):
        await tools.call("add", {"a": 1})
    async with tools:
        pass
    with pytest.raises(ToolError, match="not open"):
        await tools.call("add", {"a": 1})


async def test_list_tools_names_the_endpoint_it_cannot_reach(http_url):
    dead = f"http://127.0.0.1:{closed_port()}"
    endpoints = [HttpEndpoint(url=http_url), HttpEndpoint(url=dead)]
    async with ToolClient(endpoints, fast_retries()) as tools:
        with pytest.raises(ToolError, match=dead):
            await tools.list_tools()
        assert (await tools.call("add", {"a": 1})).ok  # the live endpoint still works

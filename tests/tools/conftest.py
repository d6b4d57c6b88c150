import logging
from collections.abc import AsyncIterator

import pytest

from tests.tools.sample_tools import CallLog, make_toolset
from tools import HttpEndpoint, McpHttpEndpoint, ToolSet
from tools.http_server import running_http_server
from tools.mcp_server import running_mcp_server


@pytest.fixture(autouse=True)
def _quiet_tool_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    # Sample tools raise on purpose; their logged tracebacks are noise here.
    caplog.set_level(logging.CRITICAL, logger="tools.registry")


@pytest.fixture
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture
def toolset(call_log: CallLog) -> ToolSet:
    return make_toolset(call_log)


@pytest.fixture
async def http_url(toolset: ToolSet) -> AsyncIterator[str]:
    async with running_http_server(toolset) as url:
        yield url


@pytest.fixture
async def mcp_url(toolset: ToolSet) -> AsyncIterator[str]:
    async with running_mcp_server(toolset) as url:
        yield url


@pytest.fixture(params=["http", "mcp-http"])
async def endpoint(
    request: pytest.FixtureRequest, toolset: ToolSet
) -> AsyncIterator[HttpEndpoint | McpHttpEndpoint]:
    """A real server of the sample tools, over each network protocol."""
    if request.param == "http":
        async with running_http_server(toolset) as url:
            yield HttpEndpoint(url=url)
    else:
        async with running_mcp_server(toolset) as url:
            yield McpHttpEndpoint(url=url)

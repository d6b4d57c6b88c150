"""The servers' command lines: ``python -m tools.http_server`` and ``... tools.mcp_server``."""

import os
import signal
import socket
import subprocess
import sys

import anyio
import httpx
import pytest

from tests.tools.sample_tools import REPO_ROOT
from tools import HttpEndpoint, McpHttpEndpoint, ToolClient

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(url: str, timeout_s: float = 20) -> None:
    with anyio.fail_after(timeout_s):
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    await http.get(url)
                    return
                except httpx.TransportError:
                    await anyio.sleep(0.05)


def start(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=10)
    finally:
        process.kill()


@pytest.mark.parametrize(
    ("module", "endpoint_type", "path"),
    [("tools.http_server", HttpEndpoint, ""), ("tools.mcp_server", McpHttpEndpoint, "/mcp")],
)
async def test_server_command_serves_the_chosen_builtin_tools(
    tmp_path, module, endpoint_type, path
):
    (tmp_path / "notes.md").write_text("The capital of France is Paris.")
    port = free_port()
    extra = ("--transport", "http") if module == "tools.mcp_server" else ()
    args = ("--tools", "calculator,search", "--docs-dir", str(tmp_path), "--port", str(port))
    process = start(module, *args, *extra)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}/")
        endpoint = endpoint_type(url=f"http://127.0.0.1:{port}{path}")
        async with ToolClient([endpoint]) as tools:
            names = [spec.name for spec in await tools.list_tools()]
            calculated = await tools.call("calculator", {"expression": "40 + 2"})
            found = await tools.call("search", {"query": "capital France", "k": 1})
    finally:
        assert stop(process) == 0

    assert names == ["calculator", "search"]
    assert calculated.content == "42"
    assert "notes.md" in found.content and "Paris" in found.content


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tools", "search"), "'search' needs --docs-dir"),
        (("--tools", "calculator,nope"), "unknown tool 'nope'"),
        (("--toolset", "no_such_module:x"), "No module named 'no_such_module'"),
    ],
)
def test_bad_options_exit_with_a_message(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "tools.http_server", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert message in result.stderr

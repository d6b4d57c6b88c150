"""`agentflow serve` as a user runs it: a process that serves until SIGTERM, then leaves nothing."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from agentflow.cli import main
from tests.processes import engine_processes

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not healthy within {timeout_s} s")


@pytest.mark.engine
@pytest.mark.slow
def test_serve_answers_over_http_and_stops_cleanly_on_sigterm(tiny_model_dir):
    port = _free_port()
    cli = Path(sys.executable).parent / "agentflow"
    proc = subprocess.Popen(
        [
            str(cli),
            "serve",
            "examples/reasoning.py",
            "--model",
            str(tiny_model_dir),
            "--load-format",
            "dummy",
            "--port",
            str(port),
            "--served-model-name",
            "tiny",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout_s=180)
        engine_procs = engine_processes(psutil.Process(proc.pid))
        assert engine_procs, "the engine core runs in a child process"
        reply = httpx.post(
            f"{url}/v1/completions",
            json={"model": "tiny", "prompt": "Hello", "max_tokens": 3, "tpot_ms": 300},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["agentflow"]["tpot_budget_ms"] == 300
        agents = httpx.get(f"{url}/v1/agents", timeout=10).json()["agents"]
        assert [a["name"] for a in agents] == ["reasoner"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(engine_procs, timeout=30)
    assert not alive, f"left behind: {[(p.pid, p.name()) for p in alive]}"


def test_bad_serve_settings_exit_2_before_starting_anything(capsys):
    assert main(["serve", "--default-ttft", "soon"]) == 2
    assert "slowdown like '3x'" in capsys.readouterr().err
    assert main(["serve", "--default-tpot-ms", "0"]) == 2
    assert "tpot_ms" in capsys.readouterr().err
    assert main(["serve", "--default-tpot", "0.5x"]) == 2
    assert "tpot_slowdown" in capsys.readouterr().err
    assert main(["serve", "--default-tpot", "quick"]) == 2
    assert "tpot must be milliseconds or a slowdown" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["serve", str(REPO / "nowhere.py")]) == 2

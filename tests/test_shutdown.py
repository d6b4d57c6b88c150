"""No engine process outlives its program: `agentflow run` interrupted mid-run, or a plain
script that serves with `VLLMEngine` and is terminated."""

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentflow.models import build_tiny_model
from tests.processes import engine_processes

REPO = Path(__file__).resolve().parents[1]
# A graceful stop takes about 7 s on a slow 2-core box; the margin is for a loaded one. What
# is tested is that it ends with no engine left, not how fast.
SHUTDOWN_WAIT_S = 180


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_run_stops_every_engine_process(tmp_path, signum):
    model = build_tiny_model(tmp_path / "tiny")
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("\n".join(json.dumps(f"question {i}") for i in range(400)))
    cli = Path(sys.executable).parent / "agentflow"
    proc = subprocess.Popen(
        [
            str(cli),
            "run",
            "examples/reasoning.py",
            "--model",
            str(model),
            "--load-format",
            "dummy",
            "--ignore-eos",
            "--inputs",
            str(inputs),
            "--concurrency",
            "4",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    parent = psutil.Process(proc.pid)
    engine_procs = _wait_for_engine(parent, timeout_s=120)
    time.sleep(2)  # let it serve for a moment
    # Ctrl-C in a terminal signals the whole foreground group; SIGTERM goes to the parent only.
    if signum == signal.SIGINT:
        import os

        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    try:
        proc.wait(timeout=SHUTDOWN_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(engine_procs, timeout=30)
    left_behind = [(p.pid, p.name()) for p in alive]
    _kill(alive)
    assert not left_behind, f"left behind: {left_behind}"
    assert proc.returncode != 0
    # Our process prints no traceback. vLLM's children may print their own: the engine core
    # reports the interrupt of its step (multiprocessing's process bootstrap is its first
    # frame), and on a slow machine the signal can find a child still importing (spawn's
    # bootstrap, `python -c`: first frame "<string>"). That output is vLLM's, not the CLI's.
    stderr = proc.stderr.read().decode()
    first_frames = re.findall(r'Traceback \(most recent call last\):\n\s+File "([^"]+)"', stderr)
    ours = [f for f in first_frames if f != "<string>" and "multiprocessing" not in f]
    assert not ours, stderr[-3000:]


SERVING_SCRIPT = """
import sys
import anyio
from agentflow.engine.interface import GenerationRequest
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig

async def main():
    config = VLLMEngineConfig(model=sys.argv[1], load_format="dummy", policy=sys.argv[2])
    async with VLLMEngine(config) as engine:
        for i in range(100_000):
            request = GenerationRequest.unconstrained(f"r{i}", "hello there", 16, label="x")
            async for _ in engine.stream(request):
                pass
            if i == 0:
                print("serving", flush=True)

if __name__ == "__main__":  # vLLM spawns its engine core: the main module must be guarded
    anyio.run(main)
"""


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fcfs", "agentflow"])
def test_a_terminated_script_stops_its_engine(tmp_path, policy):
    # Neither the stock scheduler nor ours may leave an engine core spinning after SIGTERM.
    model = build_tiny_model(tmp_path / "tiny")
    script = tmp_path / "serve.py"
    script.write_text(SERVING_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(model), policy],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_line(proc, b"serving", timeout_s=120)
        engine_procs = engine_processes(psutil.Process(proc.pid))
        assert engine_procs
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SHUTDOWN_WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(engine_procs, timeout=30)
    left_behind = [(p.pid, p.name()) for p in alive]
    _kill(alive)
    assert not left_behind, f"left behind: {left_behind}"


def _kill(leftovers: list[psutil.Process]) -> None:
    """Do not leave a failed test's engine processes spinning for the rest of the suite (on 2
    cores one busy-polling engine core makes every later shutdown test slower still)."""
    for leftover in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()


def _wait_for_line(proc: subprocess.Popen[bytes], line: bytes, timeout_s: float) -> None:
    """Read the child's stdout (vLLM logs there too) until `line` comes."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if not got and proc.poll() is not None:
            raise AssertionError(f"the script exited with {proc.returncode} before serving")
        if got.strip() == line:
            return
    raise AssertionError(f"no {line!r} within {timeout_s} s")


def _wait_for_engine(parent: psutil.Process, timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = engine_processes(parent)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        if "VLLM::Worker" in names or len(children) >= 2:
            time.sleep(8)  # the model loads and the warm-up runs
            return engine_processes(parent)
        time.sleep(0.5)
    raise AssertionError("the engine did not start")

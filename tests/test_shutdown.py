"""`agentflow run` leaves no engine process behind when it is interrupted mid-run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentflow.models import build_tiny_model

REPO = Path(__file__).resolve().parents[1]


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
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(engine_procs, timeout=30)
    assert not alive, f"left behind: {[p.info for p in alive]}"
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr.read().decode()


def _wait_for_engine(parent: psutil.Process, timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children if c.is_running())
        if "VLLM::Worker" in names or len(children) >= 3:
            time.sleep(8)  # the model loads and the warm-up runs
            return [
                c
                for c in parent.children(recursive=True)
                if "resource_tracker" not in " ".join(c.cmdline())
            ]
        time.sleep(0.5)
    raise AssertionError("the engine did not start")

"""SIGTERM stops a program the way Ctrl-C does, even where Ctrl-C itself is ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import asyncio, sys
from agentflow.engine.vllm.engine import stop_on_sigterm

async def main():
    stop_on_sigterm()
    try:
        print("ready", flush=True)
        await asyncio.sleep(60)
    finally:  # where `async with VLLMEngine(...)` shuts its engine down
        print("cleaned up", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_runs_the_programs_cleanup_and_ends_it(sigint):
    # A background job (a CI runner, `cmd &` in a script, nohup) inherits SIGINT ignored.
    def set_sigint() -> None:
        if sigint == "ignored":
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=set_sigint,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "cleaned up" in out, err
    assert proc.returncode != 0

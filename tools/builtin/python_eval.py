"""python_eval tool: evaluates one Python *expression* in a locked-down subprocess.

Threat model (be honest about what this is):

- **Goal**: let a model compute things (``sum(x**2 for x in range(10))``,
  ``sorted("banana")``, ``math.comb(10, 3)``) without being able to read or write files,
  reach the network, start processes, or exhaust the host's CPU or memory.
- **Layer 1, the language (defence in depth, not a security boundary)**: the expression
  is parsed in ``eval`` mode (so no statements: no ``import``, ``def``, loops or
  assignments) and checked against an AST whitelist; names and attributes starting with
  ``_`` (dunders) and the frame/generator/code introspection attributes (``gi_``, ``f_``,
  ``co_``, ...) and ``str.format`` are rejected; the only builtins are pure ones (no
  ``open``, ``__import__``, ``eval``, ``getattr``, ``type``, ...), plus a ``math``
  namespace. Python was not designed to be sandboxed at this level, so assume a
  determined attacker may find a way past it.
- **Layer 2, the process (the real boundary)**: every evaluation runs in a fresh
  ``python -I -S -B`` child (isolated mode, no site-packages, empty environment, ``/`` as
  working directory, its own session) with ``setrlimit`` caps: CPU seconds
  (``RLIMIT_CPU``: SIGXCPU then SIGKILL), address space (``RLIMIT_AS``), no file growth
  (``RLIMIT_FSIZE=0``), no new file descriptors (``RLIMIT_NOFILE=3``, so no ``open``,
  ``socket`` or ``pipe`` even after a layer-1 escape), no new processes
  (``RLIMIT_NPROC=0``; not enforced for root). The parent kills the whole process group
  after a wall-clock timeout, and when the caller goes away.
- **Not covered**: there is no seccomp filter, namespace, chroot or container. Reads of
  already-open descriptors 0-2 are possible (they are the sandbox's own pipes); syscalls
  that need no new descriptor (e.g. ``kill``, ``uname``, ``getpid``) are possible after a
  layer-1 escape; the child runs as the server's user, so ``RLIMIT_NPROC`` does not stop
  ``fork`` when that user is root. For hostile multi-tenant use, run the tool server
  itself in a container or VM with no network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

from tools.builtin._sandbox_child import check_expression
from tools.errors import ToolArgumentError, ToolCallFailed
from tools.registry import Tool

__all__ = ["SandboxLimits", "evaluate_in_sandbox", "python_eval_tool"]

_CHILD_PATH = Path(__file__).with_name("_sandbox_child.py")
_MAX_REPLY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Resource limits for one evaluation."""

    cpu_s: int = 2
    """CPU seconds before the kernel stops the child (SIGXCPU)."""
    memory_bytes: int = 512 * 1024 * 1024
    """Address-space cap of the child (the interpreter itself needs ~30 MiB of it)."""
    wall_s: float = 5.0
    """Wall-clock cap, covering a child that sleeps or blocks instead of computing."""
    max_output_chars: int = 4000
    """Longer results are truncated (the repr is what the model reads)."""


async def evaluate_in_sandbox(expression: str, limits: SandboxLimits | None = None) -> str:
    """Evaluate a Python expression in a sandboxed subprocess; return the ``repr`` of its value.

    Raises:
        ToolArgumentError: the expression is not allowed (checked before any process starts).
        ToolCallFailed: evaluation raised, or hit a CPU, memory or wall-time limit
            (not retryable: the same expression fails the same way).
    """
    limits = limits or SandboxLimits()
    try:
        check_expression(expression)
    except ValueError as exc:
        raise ToolArgumentError(str(exc), field="expression") from None
    request = {
        "expression": expression,
        "cpu_s": limits.cpu_s,
        "memory_bytes": limits.memory_bytes,
        "max_output_chars": limits.max_output_chars,
    }
    outcome = await _run_child(json.dumps(request).encode(), limits.wall_s)
    return _parse_reply(outcome, limits)


@dataclass(frozen=True, slots=True)
class _ChildOutcome:
    returncode: int | None
    output: bytes
    is_timed_out: bool


async def _run_child(payload: bytes, wall_s: float) -> _ChildOutcome:
    """Run the child; kill its process group on timeout or cancellation."""
    command = [sys.executable, "-I", "-S", "-B", str(_CHILD_PATH)]
    process = await anyio.open_process(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env={},
        start_new_session=True,
    )
    output = b""
    try:
        with anyio.move_on_after(wall_s) as scope:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(payload)
            await process.stdin.aclose()
            output = await _read_capped(process.stdout, _MAX_REPLY_BYTES)
            await process.wait()
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with anyio.CancelScope(shield=True):
            await process.aclose()
    return _ChildOutcome(process.returncode, output, scope.cancelled_caught)


async def _read_capped(stream: ByteReceiveStream, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with suppress(anyio.EndOfStream):
        while size < max_bytes:
            chunk = await stream.receive()
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def _parse_reply(outcome: _ChildOutcome, limits: SandboxLimits) -> str:
    if outcome.is_timed_out:
        raise ToolCallFailed(f"wall time limit exceeded ({limits.wall_s:g} s)")
    if outcome.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise ToolCallFailed(f"CPU time limit exceeded ({limits.cpu_s} s)")
    try:
        reply = json.loads(outcome.output)
    except json.JSONDecodeError:
        raise ToolCallFailed(f"sandbox process died (exit code {outcome.returncode})") from None
    if not reply.get("ok"):
        raise ToolCallFailed(str(reply.get("error", "evaluation failed")))
    return str(reply["value"])


def python_eval_tool(
    limits: SandboxLimits | None = None,
) -> Tool[[str], Coroutine[Any, Any, str]]:
    """The ``python_eval`` tool (idempotent), with the given limits."""
    chosen = limits or SandboxLimits()

    async def python_eval(expression: str) -> str:
        """Evaluate one Python expression (not statements) and return the repr of its value.

        Pure builtins (len, sum, sorted, range, ...) and a `math` namespace are available;
        imports, files, network, dunder attributes and `open` are not. CPU, memory and
        time are limited.

        Args:
            expression: e.g. "sum(x * x for x in range(10))" or "sorted('banana')".
        """
        return await evaluate_in_sandbox(expression, chosen)

    return Tool.from_function(python_eval, idempotent=True)

"""python_eval: a Python expression evaluated in a resource-limited subprocess."""

import subprocess
import sys
import time

import pytest

from tools import ToolArgumentError, ToolCallFailed
from tools.builtin import _sandbox_child
from tools.builtin.python_eval import SandboxLimits, evaluate_in_sandbox, python_eval_tool

pytestmark = pytest.mark.anyio

TIGHT = SandboxLimits(cpu_s=1, memory_bytes=256 * 1024 * 1024, wall_s=3.0)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sum(x * x for x in range(10))", "285"),
        ("sorted('banana')", "['a', 'a', 'a', 'b', 'n', 'n']"),
        ("math.comb(10, 3)", "120"),
        ("{k: len(k) for k in ['a', 'bb']}", "{'a': 1, 'bb': 2}"),
        ("'-'.join(reversed('abc')).upper()", "'C-B-A'"),
        ("sorted([3, 1, 2], key=lambda v: -v)", "[3, 2, 1]"),
        ("f'{2 ** 0.5:.3f}'", "'1.414'"),
        ("2 ** 200", str(2**200)),
    ],
)
async def test_evaluates_expressions(expression, expected):
    assert await evaluate_in_sandbox(expression, TIGHT) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "forbidden name: __import__"),
        ("(1).__class__.__bases__[0].__subclasses__()", "forbidden attribute: .__subclasses__"),
        ("[].__class__", "forbidden attribute: .__class__"),
        ("'{0.__class__}'.format(1)", "forbidden attribute: .format"),
        ("(x for x in ()).gi_frame", "forbidden attribute: .gi_frame"),
        ("(lambda: 0).__globals__", "forbidden attribute: .__globals__"),
        ("import os", "not a Python expression"),
        ("x = 1", "not a Python expression"),
        ("(y := 1)", "forbidden syntax: NamedExpr"),
    ],
)
async def test_rejects_escapes_before_starting_a_process(expression, message):
    with pytest.raises(ToolArgumentError, match=message.replace("(", r"\(").replace(".", r"\.")):
        await evaluate_in_sandbox(expression, TIGHT)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("open('/etc/passwd').read()", "NameError: name 'open' is not defined"),
        ("eval('1')", "NameError: name 'eval' is not defined"),
        ("getattr(1, 'real')", "NameError: name 'getattr' is not defined"),
        ("1 / 0", "ZeroDivisionError: division by zero"),
    ],
)
async def test_missing_builtins_and_runtime_errors_are_reported(expression, message):
    with pytest.raises(ToolCallFailed, match=message) as caught:
        await evaluate_in_sandbox(expression, TIGHT)
    assert not caught.value.is_retryable


async def test_huge_allocation_hits_the_memory_limit():
    with pytest.raises(ToolCallFailed, match="memory limit exceeded"):
        await evaluate_in_sandbox("[0] * 10 ** 9", TIGHT)


async def test_endless_computation_is_killed_by_the_cpu_limit():
    limits = SandboxLimits(cpu_s=1, wall_s=30)  # a generous wall limit, so the CPU one fires
    started = time.monotonic()
    with pytest.raises(ToolCallFailed, match=r"CPU time limit exceeded \(1 s\)"):
        await evaluate_in_sandbox("sum(range(10 ** 12))", limits)
    assert time.monotonic() - started < limits.wall_s


async def test_wall_timeout_kills_the_child_when_it_is_the_tighter_limit():
    limits = SandboxLimits(cpu_s=5, wall_s=0.5)
    started = time.monotonic()
    with pytest.raises(ToolCallFailed, match=r"wall time limit exceeded \(0.5 s\)"):
        await evaluate_in_sandbox("sum(range(10 ** 12))", limits)
    assert time.monotonic() - started < 1.5


async def test_long_results_are_truncated():
    limits = SandboxLimits(max_output_chars=20)
    assert (await evaluate_in_sandbox("'x' * 100", limits)).endswith("[truncated, 102 chars]")


def test_kernel_limits_hold_even_past_the_language_checks():
    # Simulate a layer-1 escape: apply the child's limits, then try files and sockets.
    probe = (
        "import socket, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import _sandbox_child\n"
        "_sandbox_child._apply_limits(1, 256 * 1024 * 1024)\n"
        "results = []\n"
        "for attempt in (lambda: open('/etc/hostname'), lambda: socket.socket()):\n"
        "    try:\n"
        "        attempt()\n"
        "        results.append('allowed')\n"
        "    except OSError as exc:\n"
        "        results.append(exc.errno)\n"
        "print(results)\n"
    )
    child_dir = str(_sandbox_child.__file__).rsplit("/", 1)[0]
    output = subprocess.run(
        [sys.executable, "-I", "-c", probe, child_dir], capture_output=True, text=True, timeout=10
    )

    assert output.stdout.strip() == "[24, 24]"  # EMFILE: no new file descriptors at all


async def test_tool_is_idempotent_and_callable_with_json_arguments():
    python_eval = python_eval_tool(TIGHT)

    assert python_eval.name == "python_eval" and python_eval.idempotent
    assert "expression" in python_eval.input_schema["required"]
    assert await python_eval.invoke({"expression": "len('four')"}) == "4"

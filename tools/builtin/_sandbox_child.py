"""Sandbox child for `python_eval`: checks and evaluates one expression under resource limits.

Run as ``python -I -S -B _sandbox_child.py`` with a JSON request on stdin; writes one JSON
reply line on stdout. Standard library only, so it works in an isolated interpreter. The
parent also imports `check_expression` to reject bad input without starting a process.
See `tools.builtin.python_eval` for the threat model.
"""

from __future__ import annotations

import ast
import json
import math
import resource
import sys
import types
from typing import Any

ALLOWED_NODES: frozenset[type[ast.AST]] = frozenset(
    {
        # structure and literals
        ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Store,
        ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Starred, ast.Slice, ast.Subscript,
        ast.JoinedStr, ast.FormattedValue,
        # operators
        ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp,
        ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult,
        ast.LShift, ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd,
        ast.UAdd, ast.USub, ast.Not, ast.Invert,
        ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
        # calls, attributes (checked by name below), comprehensions, lambdas
        ast.Call, ast.keyword, ast.Attribute,
        ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
        ast.Lambda, ast.arguments, ast.arg,
    }
)  # fmt: skip
"""Every node an expression may contain; anything else (imports cannot even parse in
``eval`` mode; walrus, await, yield) is rejected."""

BLOCKED_ATTRIBUTE_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")
"""Dunders and private names, and the generator/coroutine/frame/traceback/code
introspection attributes that lead from any object back to real globals and builtins."""

BLOCKED_ATTRIBUTES = frozenset({"format", "format_map", "mro"})
"""``str.format`` follows ``{0.__class__}``-style field names at run time, past the AST check."""

SAFE_BUILTIN_NAMES = (
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytes",
    "chr",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hash",
    "hex",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "oct",
    "ord",
    "pow",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
)
"""No ``open``, ``__import__``, ``eval``, ``exec``, ``compile``, ``getattr``, ``vars``,
``globals``, ``type``, ``input``, ``print``, ``breakpoint``, ``help`` or ``memoryview``."""

MAX_EXPRESSION_CHARS = 4000


def check_expression(expression: str) -> ast.Expression:
    """Parse `expression` and check it against the whitelist.

    Returns:
        The parsed tree.

    Raises:
        ValueError: the expression is too long, not an expression, or uses a forbidden
            construct, name or attribute; the message says which.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a Python expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("expression nested too deeply") from None
    for node in ast.walk(tree):
        if type(node) not in ALLOWED_NODES:
            raise ValueError(f"forbidden syntax: {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ValueError(f"forbidden name: {node.id}")
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith(BLOCKED_ATTRIBUTE_PREFIXES) or node.attr in BLOCKED_ATTRIBUTES
        ):
            raise ValueError(f"forbidden attribute: .{node.attr}")
    return tree


def _safe_namespace() -> dict[str, Any]:
    builtins_module = sys.modules["builtins"]
    safe_builtins = {name: getattr(builtins_module, name) for name in SAFE_BUILTIN_NAMES}
    math_functions = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
    return {"__builtins__": safe_builtins, "math": types.SimpleNamespace(**math_functions)}


def _apply_limits(cpu_s: int, memory_bytes: int) -> None:
    """Kernel-enforced limits; they hold even if the checks above are bypassed."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file may grow
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Only fds 0-2 are open: no new file, socket or pipe can be created.
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
    if hasattr(resource, "RLIMIT_NPROC"):
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork (ignored for root)


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the request's expression; never raises for errors in the expression."""
    try:
        code = compile(check_expression(request["expression"]), "<expression>", "eval")
        value = eval(code, _safe_namespace(), {})
        text = repr(value)
    except MemoryError:
        return {"ok": False, "error": "memory limit exceeded"}
    except RecursionError:
        return {"ok": False, "error": "recursion too deep"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    max_chars = int(request["max_output_chars"])
    if len(text) > max_chars:
        text = text[:max_chars] + f"... [truncated, {len(text)} chars]"
    return {"ok": True, "value": text}


def main() -> None:
    """Read the request, lock the process down, evaluate, write the reply."""
    request = json.loads(sys.stdin.read())
    _apply_limits(int(request["cpu_s"]), int(request["memory_bytes"]))
    reply = evaluate(request)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

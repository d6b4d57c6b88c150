"""Calculator tool: evaluates arithmetic expressions by walking their `ast`, never with `eval`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from tools.errors import ToolArgumentError
from tools.registry import Tool

__all__ = ["MAX_EXPRESSION_CHARS", "calculator_tool", "evaluate_arithmetic"]

Number = int | float

MAX_EXPRESSION_CHARS = 1000
_MAX_RESULT_BITS = 4000  # ~1200 digits: stays far below Python's int-to-str limit
_MAX_POWER_BITS = 4000
_MAX_FACTORIAL = 400

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def evaluate_arithmetic(expression: str) -> Number:
    """Evaluate an arithmetic expression safely.

    Supports numbers, ``+ - * / // % **``, parentheses, the constants ``pi e tau`` and the
    functions ``abs round min max sqrt exp log log2 log10 sin cos tan asin acos atan floor
    ceil factorial``. Anything else (names, attributes, strings, calls to other functions)
    is rejected before evaluation.

    Args:
        expression: e.g. ``"2 * (3 + 4) ** 2 / sqrt(16)"``.

    Returns:
        The value, as an int when exact integer arithmetic was used.

    Raises:
        ToolArgumentError: the expression is malformed, unsupported, too large, or its
            value is undefined (division by zero, overflow, not finite).
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise _invalid(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise _invalid(f"not an arithmetic expression: {exc.msg}") from None
    try:
        value = _evaluate(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError, RecursionError) as exc:
        raise _invalid(f"cannot evaluate {expression!r}: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid(f"{expression!r} has no finite value")
    if isinstance(value, int) and value.bit_length() > _MAX_RESULT_BITS:
        raise _invalid("result too large")
    return value


def _evaluate(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=bool()):
            raise _invalid("booleans are not numbers here")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _number(_UNARY[type(op)](_evaluate(operand)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            lhs, rhs = _evaluate(left), _evaluate(right)
            if isinstance(op, ast.Pow):
                _check_power(lhs, rhs)
            return _number(_BINARY[type(op)](lhs, rhs))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            values = [_evaluate(arg) for arg in args]
            if name == "factorial" and any(value > _MAX_FACTORIAL for value in values):
                raise _invalid(f"factorial argument above {_MAX_FACTORIAL}")
            return _number(_FUNCTIONS[name](*values))
        case ast.Name(id=name) | ast.Call(func=ast.Name(id=name)):
            raise _invalid(f"unknown name '{name}'")
        case _:
            raise _invalid(f"unsupported syntax: {type(node).__name__}")


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse powers whose result would be astronomically large (a cheap DoS otherwise)."""
    if abs(base) <= 1:
        return
    if abs(exponent) * math.log2(abs(base)) > _MAX_POWER_BITS:
        raise _invalid("power too large")


def _number(value: Any) -> Number:
    if isinstance(value, complex):
        raise ValueError("result is a complex number")
    if not isinstance(value, int | float):
        raise ValueError(f"result is a {type(value).__name__}")
    return value


def _invalid(message: str) -> ToolArgumentError:
    return ToolArgumentError(message, field="expression")


def calculator(expression: str) -> Number:
    """Evaluate an arithmetic expression and return its numeric value.

    Supports + - * / // % ** and parentheses, the constants pi, e, tau and the functions
    abs, round, min, max, sqrt, exp, log, log2, log10, sin, cos, tan, asin, acos, atan,
    floor, ceil, factorial. Example: "2 * (3 + 4) ** 2 / sqrt(16)".

    Args:
        expression: the arithmetic expression to evaluate.
    """
    return evaluate_arithmetic(expression)


def calculator_tool() -> Tool[[str], Number]:
    """The ``calculator`` tool (idempotent)."""
    return Tool.from_function(calculator, idempotent=True)

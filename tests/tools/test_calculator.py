"""The calculator: safe arithmetic by walking the AST."""

import math

import pytest

from tools import ToolArgumentError
from tools.builtin.calculator import calculator_tool, evaluate_arithmetic

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10", 1024),
        ("7 // 2 + 7 % 2", 4),
        ("-3 + +5", 2),
        ("10 / 4", 2.5),
        ("sqrt(16) + abs(-2)", 6.0),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("round(pi, 2)", 3.14),
        ("log(e)", 1.0),
        ("factorial(5)", 120),
        ("1e3 * 2", 2000.0),
        ("  2 * (3 + 4) ** 2 / sqrt(16) ", 24.5),
    ],
)
def test_evaluates_arithmetic(expression, expected):
    assert evaluate_arithmetic(expression) == pytest.approx(expected)


def test_keeps_integers_exact():
    assert evaluate_arithmetic("2 ** 100") == 2**100
    assert isinstance(evaluate_arithmetic("6 * 7"), int)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "unsupported syntax: Call"),
        ("__import__('os')", "unknown name '__import__'"),
        ("open('/etc/passwd')", "unknown name 'open'"),
        ("(1).__class__", "unsupported syntax: Attribute"),
        ("'a' * 3", "unsupported syntax: Constant"),
        ("[1, 2]", "unsupported syntax: List"),
        ("x + 1", "unknown name 'x'"),
        ("lambda: 1", "unsupported syntax: Lambda"),
        ("True + 1", "booleans are not numbers"),
        ("1 / 0", "division by zero"),
        ("10 ** 10 ** 10", "power too large"),
        ("factorial(100000)", "factorial argument above"),
        ("1e308 * 10", "no finite value"),
        ("sqrt(-1)", "math domain error"),
        ("2 +", "not an arithmetic expression"),
        ("1" * 2000, "longer than"),
        ("(" * 300 + "1" + ")" * 300, "not an arithmetic expression"),
    ],
)
def test_rejects_anything_but_arithmetic_with_a_clear_error(expression, message):
    with pytest.raises(ToolArgumentError, match=message.replace("(", r"\(")) as caught:
        evaluate_arithmetic(expression)
    assert caught.value.field == "expression"


async def test_tool_is_idempotent_and_documents_itself():
    calculator = calculator_tool()

    assert calculator.name == "calculator" and calculator.idempotent
    assert "sqrt" in calculator.description
    assert calculator.input_schema["required"] == ["expression"]
    assert await calculator.invoke({"expression": "pi * 2"}) == pytest.approx(math.tau)

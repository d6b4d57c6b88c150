"""Defining tools from typed Python functions, and grouping them in a ToolSet."""

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from agentflow.errors import AgentflowError
from tools import Tool, ToolArgumentError, ToolCallFailed, ToolError, ToolNotFound, ToolSet, tool

pytestmark = pytest.mark.anyio


class Point(BaseModel):
    x: float
    y: float


@tool(idempotent=True)
def scale(point: Point, factor: float = 2.0, unit: Literal["m", "cm"] = "m") -> Point:
    """Scale a point away from the origin.

    Longer explanation that is part of the description.

    Args:
        point: the point to scale.
        factor: how much to stretch it; values below 1 shrink
            the point towards the origin.
        unit: the unit of the coordinates.

    Returns:
        The scaled point.
    """
    return Point(x=point.x * factor, y=point.y * factor)


@tool(name="word_count")
async def count_words(text: str, min_length: Annotated[int, Field(ge=1)] = 1) -> int:
    """Count the words of a text."""
    return sum(1 for word in text.split() if len(word) >= min_length)


def test_decorator_returns_a_tool_that_still_calls_the_function():
    assert isinstance(scale, Tool)
    assert scale(Point(x=1, y=2), 3) == Point(x=3, y=6)
    assert scale.name == "scale" and count_words.name == "word_count"
    assert scale.idempotent and not count_words.idempotent


def test_description_is_the_docstring_before_its_sections():
    assert scale.description == (
        "Scale a point away from the origin.\n\nLonger explanation that is part of the description."
    )
    assert "Args" not in scale.description


def test_schema_comes_from_type_hints_defaults_and_docstring_args():
    schema = scale.input_schema

    assert schema["type"] == "object"
    assert schema["required"] == ["point"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["factor"] == {
        "type": "number",
        "default": 2.0,
        "description": (
            "how much to stretch it; values below 1 shrink the point towards the origin."
        ),
    }
    assert properties["unit"]["enum"] == ["m", "cm"]
    assert properties["point"]["$ref"] == "#/$defs/Point"
    assert set(schema["$defs"]["Point"]["properties"]) == {"x", "y"}
    assert "title" not in schema and "title" not in properties["factor"]


def test_annotated_constraints_reach_the_schema():
    assert count_words.input_schema["properties"]["min_length"]["minimum"] == 1


async def test_invoke_validates_coerces_and_returns_json_data():
    assert await scale.invoke({"point": {"x": 1, "y": "2"}}) == {"x": 2.0, "y": 4.0}
    assert await count_words.invoke({"text": "a bb ccc", "min_length": 2}) == 2


POINT = {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "argument 'point': missing (required)"),
        ({"point": {"x": 1}}, "argument 'point.y': missing (required)"),
        ({"point": POINT, "factor": "big"}, "argument 'factor': Input should be a valid number"),
        ({"point": POINT, "unit": "km"}, "argument 'unit': Input should be 'm' or 'cm'"),
        (
            {"point": POINT, "colour": "red"},
            "argument 'colour': unexpected argument (expected: point, factor, unit)",
        ),
        (["not", "an", "object"], "arguments must be a JSON object, got list"),
    ],
)
async def test_bad_arguments_raise_an_error_naming_the_field(arguments, expected):
    with pytest.raises(ToolArgumentError) as caught:
        await scale.invoke(arguments)

    assert expected in str(caught.value)
    assert str(caught.value).startswith("tool 'scale': ")
    assert caught.value.code == "tool-invalid-arguments"


async def test_a_raising_tool_becomes_a_retryable_tool_call_failed():
    @tool
    def explode() -> None:
        """Explode."""
        raise KeyError("fuse")

    with pytest.raises(ToolCallFailed, match="tool 'explode' raised KeyError: 'fuse'") as caught:
        await explode.invoke({})
    assert caught.value.is_retryable


async def test_a_tool_can_reject_its_input_itself():
    @tool
    def picky(word: str) -> str:
        """Only likes 'yes'."""
        if word != "yes":
            raise ToolArgumentError("say yes", field="word")
        return word

    with pytest.raises(ToolArgumentError, match="say yes"):
        await picky.invoke({"word": "no"})


def test_from_function_overrides_name_and_description():
    def f(x: int) -> int:
        return x

    made = Tool.from_function(f, name="identity", description="Return x.", idempotent=True)

    assert (made.name, made.description, made.idempotent) == ("identity", "Return x.", True)
    assert made.spec().model_dump() == {
        "name": "identity",
        "description": "Return x.",
        "input_schema": made.input_schema,
        "idempotent": True,
    }


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda x: x, "parameter 'x' needs a type annotation"),
        (lambda *items: items, "must be a plain named parameter"),
    ],
)
def test_functions_that_cannot_be_described_are_rejected(function, message):
    with pytest.raises(ToolError, match=message) as caught:
        Tool.from_function(function, name="bad")
    assert caught.value.code == "tool-definition"
    assert isinstance(caught.value, AgentflowError)


def test_toolset_keeps_order_rejects_duplicates_and_selects():
    tools = ToolSet([scale, count_words])

    assert tools.names == ("scale", "word_count")
    assert "scale" in tools and len(tools) == 2
    assert tools.select(["word_count"]).names == ("word_count",)
    with pytest.raises(ToolError, match="two tools are named 'scale'"):
        ToolSet([scale, scale])


def test_unknown_tool_lists_the_available_ones():
    with pytest.raises(ToolNotFound, match=r"unknown tool 'nope' \(available: scale, word_count\)"):
        ToolSet([scale, count_words]).get("nope")

"""Tool calling: an "act" stage proposes tool calls in a loop, a "final" stage answers.

The act stage sees the question, the tools and the transcript so far, and replies either with a
tool call as a JSON object, `{"tool": "calculator", "arguments": {"expression": "2+3"}}`, or with
plain text when it has what it needs. A reply that tries to call a tool but is malformed (broken
JSON, unknown tool, arguments not an object) is fed back as an observation, not raised: small
models get a chance to fix it. Tool failures come back the same way (`error: ...`). The loop is
bounded by `max_iterations` (then `IterationLimit` ends the program with status
`max_iterations`) and by the agent's `deadline_ms`, which also caps each tool call's timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import agentflow as af
from agentflow.errors import IterationLimit

__all__ = [
    "EXTRA_INPUTS",
    "STAGES",
    "MalformedCall",
    "ToolCall",
    "act",
    "final",
    "parse_tool_call",
    "tool_loop",
]


@af.stage(ttft="3x", tpot="3x", max_tokens=64, tier="tight", name="act")
def act(question: str, tools: str, transcript: str) -> str:
    """Propose the next tool call (tight: the user waits on every loop iteration)."""
    # One worked example: small models copy the format far more reliably than they follow it.
    return (
        "You can call tools. To call one, reply with only a JSON object. When the observations "
        "answer the question, reply in plain text.\n"
        f"Tools:\n{tools}\n"
        "Example:\nQuestion: What is 12 + 30?\n"
        'Reply: {"tool": "calculator", "arguments": {"expression": "12 + 30"}}\n'
        "Observation: 42\nReply: 12 + 30 is 42.\n\n"
        f"Question: {question}\n{transcript}Reply:"
    )


@af.stage(ttft="5x", tpot="8x", max_tokens=96, tier="loose", name="final")
def final(question: str, transcript: str) -> str:
    """Answer from the transcript (loose: read once, at the end)."""
    return f"Question: {question}\n{transcript}\nGive the final answer in one or two sentences."


STAGES = (act, final)
EXTRA_INPUTS = ("tools", "transcript")
"""Values the stages read that are neither agent inputs nor stage outputs."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A well-formed tool call proposed by the model."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MalformedCall:
    """The model tried to call a tool but the call is unusable; `reason` is shown to it."""

    reason: str


_JSON_START = re.compile(r"[{]")


def parse_tool_call(text: str, known_tools: Sequence[str]) -> ToolCall | MalformedCall | None:
    """Find a tool call in a model reply.

    Returns a `ToolCall`, a `MalformedCall` when the reply attempts one (a JSON object or a
    mention of `"tool"`) that cannot be used, or None when the reply is plain text (an answer).
    """
    decoder = json.JSONDecoder()
    attempted = '"tool"' in text or "'tool'" in text
    for match in _JSON_START.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict) or "tool" not in value:
            continue
        name, arguments = value.get("tool"), value.get("arguments", {})
        if not isinstance(name, str) or name not in known_tools:
            return MalformedCall(f"unknown tool {name!r}; known tools: {', '.join(known_tools)}")
        if not isinstance(arguments, dict):
            return MalformedCall('"arguments" must be a JSON object')
        return ToolCall(name, arguments)
    if attempted:
        return MalformedCall('could not parse the tool call; reply with {"tool": ..., ...} only')
    return None


async def tool_loop(
    ctx: af.Context,
    question: str,
    *,
    tools: Sequence[str],
    tool_descriptions: str = "",
    max_iterations: int = 4,
    tool_timeout_s: float = 5.0,
) -> str:
    """Run act → tool → observation until the model answers, then the final stage.

    Raises:
        IterationLimit: `max_iterations` acts proposed tool calls without reaching an answer.
    """
    descriptions = tool_descriptions or "\n".join(f"- {name}" for name in tools)
    transcript = ""
    for _ in range(max_iterations):
        reply = await ctx.run(act, question, descriptions, transcript)
        parsed = parse_tool_call(reply, tools)
        if parsed is None:
            return await ctx.run(final, question, transcript + f"Draft answer: {reply}\n")
        if isinstance(parsed, MalformedCall):
            observation = f"error: {parsed.reason}"
        else:
            result = await ctx.call_tool(parsed.tool, parsed.arguments, timeout_s=tool_timeout_s)
            observation = result.observation()
        transcript += f"Reply: {reply.strip()}\nObservation: {observation}\n"
    raise IterationLimit(f"tool loop used all {max_iterations} iterations without an answer")

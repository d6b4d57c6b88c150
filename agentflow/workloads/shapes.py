"""Program shapes of the synthetic scenarios: the stage calls of each program instance.

The authors' arXiv-summary, ToolBench and reasoning length datasets are not available here;
these clipped log-normals are stand-ins, with their parameters stated in each docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentflow.engine.sim.request import CHAT_TEMPLATE_TAIL_TOKENS
from agentflow.workloads.lengths import LogNormalLengths

__all__ = [
    "MAX_CONTEXT_TOKENS",
    "MAX_OUTPUT_TOKENS",
    "StageCall",
    "clip_lengths",
    "follow_up",
    "reasoning_shape",
    "summarization_shape",
    "tool_calling_shape",
]

MAX_CONTEXT_TOKENS = 8192
"""Prompt + output are clipped to this (the engines' step budget and context)."""
MAX_OUTPUT_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class StageCall:
    """One LLM call of a program."""

    stage: str
    prompt_tokens: int
    output_tokens: int
    delay_s: float = 0.0
    """Time between the previous call's last token and this call (tool execution)."""
    shared_prefix_tokens: int = 0
    """Leading prompt tokens shared with the previous call's sequence (prefix-cache reuse)."""


def follow_up(
    parent: StageCall, stage: str, prompt: int, output: int, delay_s: float = 0.0
) -> StageCall:
    """A call whose prompt text extends `parent`'s prompt text.

    The programs in `agentflow.workloads.programs` build their prompts so; rendered with the
    chat template, the two share the parent's prompt up to the template's tail.
    """
    prompt, output = clip_lengths(prompt, output)
    shared = min(prompt, max(0, parent.prompt_tokens - CHAT_TEMPLATE_TAIL_TOKENS))
    return StageCall(stage, prompt, output, delay_s, shared)


def clip_lengths(prompt: int, output: int) -> tuple[int, int]:
    """Clip a call's lengths to the engines' limits."""
    output = int(min(max(output, 1), MAX_OUTPUT_TOKENS))
    prompt = int(min(max(prompt, 1), MAX_CONTEXT_TOKENS - output))
    return prompt, output


def summarization_shape(rng: np.random.Generator, n: int) -> list[tuple[StageCall, ...]]:
    """arXiv-summary-like: long documents (median 2,500 tokens), short abstracts (median 200)."""
    prompts = LogNormalLengths(2500, 0.4, 512, 6144).sample(rng, n)
    outputs = LogNormalLengths(200, 0.4, 32, 512).sample(rng, n)
    return [
        (StageCall("summarize", *clip_lengths(int(p), int(o))),)
        for p, o in zip(prompts, outputs, strict=True)
    ]


def reasoning_shape(rng: np.random.Generator, n: int) -> list[tuple[StageCall, ...]]:
    """Question (median 150 tokens), thinking (median 600), answer (median 120) re-reading both."""
    questions = LogNormalLengths(150, 0.6, 16, 1024).sample(rng, n)
    thoughts = LogNormalLengths(600, 0.6, 64, 2048).sample(rng, n)
    answers = LogNormalLengths(120, 0.5, 16, 512).sample(rng, n)
    shapes: list[tuple[StageCall, ...]] = []
    for q, t, a in zip(questions.tolist(), thoughts.tolist(), answers.tolist(), strict=True):
        think = StageCall("think", *clip_lengths(q + 20, t))
        answer = follow_up(think, "answer", q + think.output_tokens + 20, a)
        shapes.append((think, answer))
    return shapes


def tool_calling_shape(rng: np.random.Generator, n: int) -> list[tuple[StageCall, ...]]:
    """ToolBench-like: 1-4 tool rounds then a final answer.

    System prompt with tool schemas (median 600 tokens), each act emits a call (median 48
    tokens), each observation adds median 150 tokens, each tool runs median 0.3 s; the final
    answer has median 150 tokens. Each round's prompt is the whole conversation so far.
    """
    systems = LogNormalLengths(600, 0.4, 128, 2048).sample(rng, n)
    rounds = rng.integers(1, 5, size=n)
    shapes: list[tuple[StageCall, ...]] = []
    for i in range(n):
        context = int(systems[i])
        acts = LogNormalLengths(48, 0.5, 8, 256).sample(rng, int(rounds[i]))
        observations = LogNormalLengths(150, 0.7, 16, 1024).sample(rng, int(rounds[i]))
        delays = rng.lognormal(np.log(0.3), 0.5, size=int(rounds[i]))
        calls: list[StageCall] = []
        delay = 0.0
        for act, obs, tool_s in zip(
            acts.tolist(), observations.tolist(), delays.tolist(), strict=True
        ):
            if calls:
                call = follow_up(calls[-1], "act", context, act, delay)
            else:
                call = StageCall("act", *clip_lengths(context, act))
            calls.append(call)
            context += call.output_tokens + obs
            delay = tool_s
        final_out = int(LogNormalLengths(150, 0.5, 16, 512).sample(rng, 1)[0])
        calls.append(follow_up(calls[-1], "final", context, final_out, delay))
        shapes.append(tuple(calls))
    return shapes

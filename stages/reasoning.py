"""Reasoning: a fast "think" stage the user watches, then a relaxed "answer"."""

from __future__ import annotations

import agentflow as af

__all__ = ["STAGES", "answer", "reason", "think", "think_prompt"]


def think_prompt(question: str) -> str:
    """The think stage's prompt; the answer stage repeats it as its prefix."""
    return f"Think step by step, in a few short sentences, about this question: {question}"


@af.stage(ttft="3x", tpot="3x", max_tokens=128, tier="tight", name="think")
def think(question: str) -> str:
    """Reasoning the user watches stream: tight TPOT."""
    return think_prompt(question)


@af.stage(ttft="5x", tpot="8x", max_tokens=96, tier="loose", name="answer")
def answer(question: str, think: str) -> str:
    """The final answer, read as a whole: loose budget."""
    # Starts with think's prompt: that prefix is already in the KV cache (8x cheaper prefill,
    # benchmarks/reasoning_split.py).
    return f"{think_prompt(question)}\nNotes: {think}\nNow give a short, direct answer."


STAGES = (think, answer)


async def reason(ctx: af.Context, question: str) -> str:
    """Think, then answer with the thoughts in the prompt.

    Two requests: the second prefill re-reads the question and the notes (prefix caching makes
    the shared part cheap).
    """
    notes = await ctx.run(think, question)
    return await ctx.run(answer, question, notes)

"""A two-stage reasoning agent: a fast "think" stage the user watches, then a relaxed answer.

Run it: `agentflow run examples/reasoning.py --input "Why do leaves change colour?"`
"""

import agentflow as af


def think_prompt(question: str) -> str:
    return f"Think step by step, in a few short sentences, about this question: {question}"


# Budgets relative to the engine ("3x": three times what the request needs alone), so the
# example asks for the same tightness on a 2-core CPU and on a GPU.
@af.stage(ttft="3x", tpot="3x", max_tokens=128, tier="tight")
def think(question: str) -> str:
    # The user watches the reasoning stream: it must keep up (tight TPOT).
    return think_prompt(question)


@af.stage(ttft="5x", tpot="8x", max_tokens=96, tier="loose")
def answer(question: str, think: str) -> str:
    # Only the final answer is read as a whole: its budget is loose.
    # Starts with think's prompt: that prefix is already in the KV cache (8x cheaper prefill,
    # benchmarks/reasoning_split.py).
    return f"{think_prompt(question)}\nNotes: {think}\nNow give a short, direct answer."


@af.agent
async def reasoner(ctx: af.Context, question: str = "Why is the sky blue?") -> str:
    notes = await ctx.run(think, question)
    return await ctx.run(answer, question, notes)

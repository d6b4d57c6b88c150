"""Small programs shared by tests of the runtime's events, tracing and streaming."""

import agentflow as af


@af.stage(ttft_ms=300, tpot_ms=40, max_tokens=3, tier="tight")
def think(question: str) -> str:
    return f"think: {question}"


@af.stage(ttft_ms=900, tpot_ms=150, max_tokens=2, tier="loose")
def answer(question: str, think: str) -> str:
    return f"q: {question} notes: {think}"


@af.agent
async def reasoner(ctx: af.Context, question: str) -> str:
    """Two stages: a tight 3-token think, then a loose 2-token answer."""
    notes = await ctx.run(think, question)
    return await ctx.run(answer, question, notes)

"""Summarization: a long document whose summary must start fast (tight TTFT, "3x").

Run it: `agentflow run examples/summarization.py --input "$(cat some_article.txt)"`
"""

import agentflow as af
from stages.summarize import summarize

ARTICLE = (
    "Large language model serving systems batch many requests together to use the hardware "
    "well. Each request has two phases: a prefill that processes the whole prompt at once, "
    "and a decode that produces one token per step. A long prefill in the same batch as many "
    "decodes slows every decode down, so systems split prompts into chunks. Applications care "
    "about different latencies: a summarizer wants its first token soon after a long prompt "
    "arrives, a coding assistant wants tokens to keep flowing quickly, and a chatbot only "
    "needs to keep up with reading speed. Serving all of them well on shared hardware means "
    "choosing, at every step, how many prompt tokens to process and which requests to admit."
)


@af.agent
async def summarizer(ctx: af.Context, text: str = ARTICLE) -> str:
    return await ctx.run(summarize, text)

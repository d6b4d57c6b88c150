"""Chatbot: one loose-budget reply per message (SLOs-Serve's "chatbot" scenario).

Run it: `agentflow run examples/chatbot.py --input "Tell me about otters."`
"""

import agentflow as af
from stages.chat import chat


@af.agent
async def chatbot(ctx: af.Context, message: str = "What is a good name for a pet otter?") -> str:
    return await ctx.run(chat, message)

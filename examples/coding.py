"""Coding assistant: a long answer streamed to an editor, so TPOT is tight ("coding" scenario).

Run it: `agentflow run examples/coding.py --input "reverse a linked list"`
"""

import agentflow as af
from stages.code import code


@af.agent
async def coder(ctx: af.Context, task: str = "check whether a string is a palindrome") -> str:
    return await ctx.run(code, task)

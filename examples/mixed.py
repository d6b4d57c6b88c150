"""Mixed traffic: coding, summarization and chat requests sharing one engine ("mixed").

Each instance names its kind; the stages carry different SLOs, which is exactly what the
planner arbitrates. Run many at once:
`agentflow run examples/mixed.py --inputs examples/mixed_inputs.jsonl --concurrency 12`
"""

import agentflow as af
from stages.chat import chat
from stages.code import code
from stages.summarize import summarize

_STAGE_BY_KIND = {"code": code, "summarize": summarize, "chat": chat}


@af.agent(stages=[code, summarize, chat], extra_inputs=["task", "message"])
async def mixed(ctx: af.Context, kind: str = "chat", text: str = "Hello there!") -> str:
    if kind not in _STAGE_BY_KIND:
        raise ValueError(f"kind must be one of {sorted(_STAGE_BY_KIND)}, got {kind!r}")
    return await ctx.run(_STAGE_BY_KIND[kind], text)

"""Chat: a conversational reply; loose on both budgets."""

from __future__ import annotations

import agentflow as af

__all__ = ["STAGES", "chat"]


@af.stage(ttft="5x", tpot="8x", max_tokens=128, tier="loose", name="chat")
def chat(message: str) -> str:
    """Reply to `message`."""
    return message


STAGES = (chat,)

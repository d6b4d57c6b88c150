"""Code generation: a long answer streamed to an editor (tight TPOT, relaxed TTFT)."""

from __future__ import annotations

import agentflow as af

__all__ = ["STAGES", "code"]


@af.stage(ttft="5x", tpot="3x", max_tokens=192, tier="tight-tpot", name="code")
def code(task: str) -> str:
    """Write code for `task`."""
    return f"Write a short Python function for this task. Reply with code only.\n\nTask: {task}"


STAGES = (code,)

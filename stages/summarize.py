"""Summarization: a long input that must start answering fast (tight TTFT), read at leisure."""

from __future__ import annotations

import agentflow as af

__all__ = ["STAGES", "summarize"]


@af.stage(ttft="3x", tpot="8x", max_tokens=96, tier="tight-ttft", name="summarize")
def summarize(text: str) -> str:
    """Summarize `text` in a few sentences."""
    return f"Summarize the following text in two or three sentences.\n\n{text}"


STAGES = (summarize,)

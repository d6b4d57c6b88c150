"""A conversation as the text a model prefills, with or without the model's chat template."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ChatRenderer", "Messages", "render_conversation", "role_lines"]

Messages = Sequence[Mapping[str, str]]
ChatRenderer = Callable[[Messages], str]
"""Turns OpenAI-style messages ({"role", "content"}) into prompt text."""


def role_lines(messages: Messages) -> str:
    """One `role: content` line per message and an `assistant:` line to answer on.

    For models (and simulated engines) without a chat template.
    """
    return "\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant:"])


def render_conversation(tokenizer: Any, messages: Messages) -> str:
    """`messages` through the tokenizer's chat template, ready for the assistant's turn.

    Falls back to `role_lines` when the tokenizer has no template.
    """
    if not getattr(tokenizer, "chat_template", None):
        return role_lines(messages)
    rendered = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
    )
    return str(rendered)

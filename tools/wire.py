"""What crosses the wire between tool servers and the client: tool specs and call replies."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CallReply", "ToolListing", "ToolSpec", "content_text"]


class ToolSpec(BaseModel):
    """A tool as a client sees it: what to call and how to call it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    """What the tool does, for the model's prompt."""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    """JSON schema of the arguments object."""
    idempotent: bool = False
    """True if calling twice with the same arguments is safe; only such tools are retried."""


class ToolListing(BaseModel):
    """Body of `GET /tools` on an HTTP tool server."""

    tools: list[ToolSpec]


class CallReply(BaseModel):
    """Body of the answer to `POST /tools/{name}` on an HTTP tool server."""

    ok: bool
    content: Any = None
    """The tool's return value as JSON (present when ok)."""
    error: str | None = None
    """What went wrong, in words a model can act on (present when not ok)."""
    code: str | None = None
    """Stable error code, e.g. ``tool-invalid-arguments`` (present when not ok)."""


def content_text(value: Any) -> str:
    """Render a tool's JSON return value as the text a model reads.

    Args:
        value: a JSON-compatible value.

    Returns:
        The string itself for a string, compact JSON otherwise.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)

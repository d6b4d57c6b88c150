"""Errors the server answers with, in OpenAI's shape."""

from __future__ import annotations

from agentflow.errors import AgentflowError

__all__ = ["BadRequest"]


class BadRequest(AgentflowError):
    """A request the server refuses before serving it; the message names what is wrong."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.status = status

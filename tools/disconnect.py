"""ASGI middleware that cancels a request's handler when its client hangs up mid-request."""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CancelOnDisconnect"]


class CancelOnDisconnect:
    """Cancel the handler of an HTTP request whose client disconnects before the response ends.

    A client that times out a slow tool call closes its connection; without this, the
    server would keep running the tool (and, for `python_eval`, its subprocess) for nobody.
    Only requests with a body are watched: the watch starts once the body has been read,
    so it never steals body messages from the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; cancel it if the client disconnects before the response is done."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_body_read = anyio.Event()
        is_response_done = False

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                is_body_read.set()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal is_response_done
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                is_response_done = True
            await send(message)

        async with anyio.create_task_group() as task_group:

            async def watch() -> None:
                await is_body_read.wait()
                while not is_response_done:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        if not is_response_done:
                            task_group.cancel_scope.cancel()
                        return

            task_group.start_soon(watch)
            await self.app(scope, tracked_receive, tracked_send)
            task_group.cancel_scope.cancel()

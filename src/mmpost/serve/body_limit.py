"""A request body limit that answers like every other refusal: 413 with ``{"detail": message}``.

The framework has a body limit of its own, but where the declared Content-Length is over it, it replaces
whatever response is sent with a plain-text "Content Too Large"; this one names the limit and the option.
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """A declared Content-Length over ``max_bytes`` is refused before any byte is read; a body without one
    (chunked) is counted as it streams in, and refused as soon as it passes ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, message: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:       # raised inside the handler's read: answered as a 413
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)

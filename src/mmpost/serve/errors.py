"""The one exception a request handler raises for a request it will not predict."""
from __future__ import annotations


class RequestRejected(Exception):
    """An HTTP status (413: over a size limit, 415: wrong media type, 422: unusable content) and a message that
    names the field (``posts[3].image``) and what is wrong with it. The server answers ``{"detail": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

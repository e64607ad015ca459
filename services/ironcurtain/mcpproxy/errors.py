"""The error a backend session raises: the backend's JSON-RPC error answer, or CONNECTION_CLOSED
when the session ended. Ours rather than the SDK's, so the proxy's start-up does not import the
whole MCP SDK for an exception class (the SDK client, for `url` backends, is wrapped to raise it).
"""

from __future__ import annotations


class BackendError(Exception):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


RESULT_TOO_LARGE = -32001  # ours: a backend's answer past the proxy's size limit


class ResultTooLarge(BackendError):
    """A backend answered with more than the proxy reads (`max_result_bytes`); refused unread."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            RESULT_TOO_LARGE,
            f"the backend's result is larger than the limit of {limit} bytes "
            "(max_result_bytes); refused",
        )
        self.limit = limit

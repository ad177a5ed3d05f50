"""Every HTTP error answer in one shape: what is wrong and the fix, a stable code, and for a 422 each field.

A fault of ours (5xx) answers its class's safe text and the request id; its message (which may name a file,
an S3 location or a setting) is logged under that request id.
"""

from __future__ import annotations

from handler.errors import SkewlessError, UnsupportedMediaType
from handler.observability import count_rejection, log_fault, logger
from handler.triggers.http.proxy import APPLICATION_JSON, Response


class MethodNotAllowed(SkewlessError):
    """The path exists but not with this method; `allow` lists the methods it takes."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, path: str, allow: list[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}: use {' or '.join(allow)}")
        self.allow = allow


def error_response(exc: SkewlessError, request_id: str) -> Response:
    """Our error shape for every status; a 5xx carries the request id, never its message or a stack trace."""
    body = exc.to_body()
    headers: dict[str, str] = {}
    if exc.status >= 500:
        body["request_id"] = request_id
        log_fault(exc, request_id)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allow)
    if isinstance(exc, UnsupportedMediaType):  # a 415 for a content coding says which ones we take (RFC 9110 §12.5.3)
        headers["Accept-Encoding"] = exc.accepted
    # The code and status, never the message: a 422's reasons name inputs, and logs keep no request content.
    logger.info("request rejected", extra={"status": exc.status, "code": exc.code})
    count_rejection(exc)
    return Response(status_code=exc.status, content_type=APPLICATION_JSON, body=body, headers=headers)

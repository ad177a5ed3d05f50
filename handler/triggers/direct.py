"""Direct invoke (`aws lambda invoke`, `sam local invoke`, Step Functions): the event is a v1 body.

A request that cannot be answered fails the invocation with a typed error, so that Step
Functions' `Retry` and `Catch` see it (DIRECT_ERRORS=raise, the default): `InvalidInput` (the
request's fault: 400, 413 or 422; retrying cannot help), `ModelUnavailable` (503: retry),
`InternalError` (a fault of ours). The error's message is the JSON error body, with its status.
DIRECT_ERRORS=return answers the same body as the invocation's result instead.

The error is handed back to the entry point as a `Failure` and raised there, outside Powertools'
decorators: Lambda's Python runtime then reports one frame, the entry point's, and nothing of
ours below it; a fault of ours is logged here with its trace and never sent to the caller. A fault of ours
(5xx) answers its class's safe text (`SkewlessError.public`), its message logged under the request id, and
counts one `Http5xx`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handler.bootstrap import Started
from handler.errors import SkewlessError
from handler.observability import count_5xx, count_internal_error, count_rejection, log_fault, logger


class InvalidInput(Exception):
    """The request cannot be answered as sent (400, 413, 422): fix it; retrying cannot help."""


class ModelUnavailable(Exception):
    """The model or its artifacts are unavailable (503): a fault of the deployment; retry or alarm."""


class InternalError(Exception):
    """A fault of ours (500): the trace is in the function's log under the request id."""


@dataclass(frozen=True)
class Failure:
    """An invocation to fail with `error`, raised by the entry point after logs and metrics are flushed."""

    error: Exception


def _typed(status: int) -> type[Exception]:
    if status == 503:
        return ModelUnavailable
    return InvalidInput if status < 500 else InternalError


def handle_event(event: Any, context: Any, started: Started, mode: str = "raise") -> Any:
    """A v1 request body -> its v1 response body; otherwise an error body (returned, or raised as a Failure).

    Row i's inference id is `<the invocation's request id>/<i>` (the caller has that id from Lambda's answer).
    """
    from handler.core.inference_ids import RowIds  # lazily: the init imports this module, and nothing of the core

    ids = RowIds(str(getattr(context, "aws_request_id", "unknown")))
    return guarded(lambda: started.require().predict_v1(event, ids=ids), context, mode)


def guarded(answer: Callable[[], Any], context: Any, mode: str = "raise") -> Any:
    """`answer()`, or the error body for what made it fail: returned (mode "return") or as a Failure to raise."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        return answer()
    except SkewlessError as exc:
        # Direct callers get no HTTP status, so the status travels in the body (a 5xx's safe text, not its message).
        body = {**exc.to_body(), "status": exc.status, "request_id": request_id}
        logger.info("request rejected", extra={"status": exc.status, "code": exc.code})
        count_rejection(exc)
        if exc.status >= 500:
            log_fault(exc, request_id)
            count_5xx()
        return body if mode == "return" else Failure(_typed(exc.status)(json.dumps(body)))
    except Exception:
        logger.exception("unexpected error while answering an invocation", extra={"request_id": request_id})
        count_internal_error()
        count_5xx()
        body = {**SkewlessError("").to_body(), "status": 500, "request_id": request_id}
        return body if mode == "return" else Failure(InternalError(json.dumps(body)))

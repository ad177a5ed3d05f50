"""Direct invoke (`aws lambda invoke`, `sam local invoke`, Step Functions): the event is a v1 body."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler.core.service import Service
from handler.errors import SkewlessError
from handler.observability import count_rejection, logger, metrics


def handle_event(event: Any, context: Any, service: Service | None, startup_error: SkewlessError | None) -> Any:
    """A v1 request body -> its v1 response body, or an error object; a bad body never raises."""
    try:
        if service is None:
            raise startup_error or SkewlessError("the service is not available")
        answer = service.predict_v1(event)
    except SkewlessError as exc:
        # Direct callers get no HTTP status, so the status travels in the body.
        body = {**exc.to_body(), "status": exc.status, "request_id": getattr(context, "aws_request_id", None)}
        logger.info("request rejected", extra={"status": exc.status, "code": exc.code})
        count_rejection(exc)
        return body
    metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=service.last.inference_seconds * 1e3)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=service.last.batch_size)
    return answer

"""The Lambda entry points: tell the trigger apart by the event's shape, hand the event to its adapter.

`lambda_handler` accepts every trigger; the per-trigger handlers below skip the guessing when
the template wires a trigger to its own function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.errors import SkewlessError
from handler.observability import capture_lambda_handler, logger, metrics
from handler.settings import Settings
from handler.sources import direct
from handler.sources.api import HttpApi

Trigger = Literal["rest", "http", "function_url", "alb", "s3", "eventbridge_s3", "sqs", "direct"]

# One JMESPath for every trigger: the API's request id, the ALB trace id, S3's request id, SQS's message id.
CORRELATION_ID_PATH = (
    'requestContext.requestId || headers."x-amzn-trace-id" || '
    'Records[0].responseElements."x-amz-request-id" || Records[0].messageId || id'
)


def _open(settings: Settings) -> tuple[Service | None, SkewlessError | None]:
    # Bad artifacts answer 503 with the reason (and /v2/health/ready says why) instead of an
    # init crash that API Gateway would turn into a bare 502.
    try:
        return open_service(settings), None
    except SkewlessError as exc:
        logger.error("the service cannot start", extra={"code": exc.code, "reason": exc.message})
        return None, exc


# A health or metadata request has no application metric; that is normal, not worth a warning each time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

settings = Settings.from_env()
service, startup_error = _open(settings)
http_api = HttpApi(service, settings, startup_error)


def event_trigger(event: Any) -> Trigger:
    """Which trigger sent this event, from its shape alone."""
    if not isinstance(event, dict):
        return "direct"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource")
        if source == "aws:s3":
            return "s3"
        if source == "aws:sqs":
            return "sqs"
    if event.get("source") == "aws.s3" and "detail-type" in event:
        return "eventbridge_s3"
    context = event.get("requestContext")
    if isinstance(context, dict):
        if "elb" in context:
            return "alb"
        if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
            # Function URLs and HTTP APIs send the same payload; only the domain tells them apart.
            return "function_url" if ".lambda-url." in str(context.get("domainName", "")) else "http"
        if "httpMethod" in event:
            return "rest"
    return "direct"


def _require_service() -> Service:
    if service is None:
        raise startup_error or SkewlessError("the service is not available")
    return service


def _s3(event: dict[str, Any], context: Any) -> Any:
    from handler.sources import s3  # lazily: HTTP-only functions never import boto3's S3 code

    return s3.handle_event(event, context, _require_service(), settings)


def _sqs(event: dict[str, Any], context: Any) -> Any:
    from handler.sources import sqs

    return sqs.handle_event(event, context, _require_service(), settings)


def dispatch(trigger: Trigger, event: Any, context: Any) -> Any:
    """Hand the event to the adapter of its trigger, and record the model load if this request paid for it."""
    loads_before = service.model.loads if service is not None else 0
    try:
        if trigger in ("rest", "http", "function_url", "alb"):
            return http_api.handle(trigger, event, context)
        if trigger in ("s3", "eventbridge_s3"):
            return _s3(event, context)
        if trigger == "sqs":
            return _sqs(event, context)
        return direct.handle_event(event, context, service, startup_error)
    finally:
        if service is not None and service.model.loads > loads_before and service.model.load_seconds is not None:
            metrics.add_metric(
                name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=service.model.load_seconds * 1e3
            )


def _entry(trigger: Trigger | None) -> Callable[[Any, Any], Any]:
    """A Lambda handler with Powertools' logger, tracer and metrics around `dispatch`."""

    @logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
    @capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: Any, context: Any) -> Any:
        return dispatch(trigger or event_trigger(event), event, context)

    return handler


lambda_handler = _entry(None)
rest_api_handler = _entry("rest")
http_api_handler = _entry("http")
function_url_handler = _entry("function_url")
alb_handler = _entry("alb")
direct_handler = _entry("direct")
s3_handler = _entry("s3")
sqs_handler = _entry("sqs")

"""Powertools Logger, Metrics and Tracer: created once, shared by every adapter."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch as _emf

from handler.errors import NonFiniteOutput, SkewlessError

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "skewless")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "skewless"), service=SERVICE)

# The core logs with the standard library ("skewless.*"); give those records the JSON format too.
copy_config_to_registered_loggers(source_logger=logger, include={"skewless"})


def tracing_enabled() -> bool:
    """Powertools' own rule: off with POWERTOOLS_TRACE_DISABLED, outside Lambda, and under `sam local`."""
    return not Tracer._is_tracer_disabled()


@functools.cache
def tracer() -> Tracer:
    """The X-Ray tracer, made on first use: making one imports the X-Ray SDK (~0.4 s measured here)."""
    return Tracer(service=SERVICE)


def capture_lambda_handler(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Trace the handler with X-Ray where tracing is on; leave it untouched (and the SDK unimported) where off."""
    if not tracing_enabled():
        return handler
    return tracer().capture_lambda_handler(handler)


def count_rejection(exc: SkewlessError) -> None:
    """Metrics for a refused request: by status, in all, and NaN answers of the model on their own."""
    metrics.add_metric(name=f"Rejected{exc.status}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RejectedRequests", unit=MetricUnit.Count, value=1)
    if isinstance(exc, NonFiniteOutput):
        count_non_finite(len({e.instance for e in exc.errors}))


def log_fault(exc: SkewlessError, request_id: str | None) -> None:
    """The full message of a fault of ours (which its answer leaves out), for the operator with the request id."""
    logger.error(
        "request failed",
        extra={"status": exc.status, "code": exc.code, "reason": exc.message, "request_id": request_id},
    )


def count_internal_error() -> None:
    """A request that failed for a reason no check before the model caught (a 500): counted, for an alarm."""
    metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)


def count_non_finite(rows: int) -> None:
    """Rows the model answered NaN or infinity for: never served, always counted."""
    metrics.add_metric(name="NonFiniteOutputs", unit=MetricUnit.Count, value=rows)


# --- metrics by function and version: what the canary's alarms watch -------------------------------


def deployment() -> dict[str, str]:
    """The `function` and `version` dimensions, as Lambda sets them (the published version under an alias).

    With them a new version is judged on its own traffic during a canary, and two stacks never share a
    series. Read per call: cheap, and right whatever the environment was when this module was imported.
    """
    return {
        "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or SERVICE,
        "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST",
    }


@functools.cache
def emf_serializer() -> EphemeralMetrics:
    """Serialises EMF lines with dimensions of their own, in the namespace of the function's metrics."""
    return EphemeralMetrics(namespace=metrics.namespace or "skewless", service=SERVICE)


def count_5xx() -> None:
    """One `Http5xx` (an HTTP answer of 5xx, or a direct invoke failed by a fault of ours), printed now.

    On an EMF line of its own with exactly the `function` and `version` dimensions: the invocation's metric
    set shares one dimension set (`service`), and the alarms name this one.
    """
    if is_metrics_disabled():
        return
    line = emf_serializer().serialize_metric_set(
        metrics={"Http5xx": {"Unit": MetricUnit.Count.value, "Value": [1.0]}}, dimensions=deployment(), metadata={}
    )
    print(json.dumps(line, separators=(",", ":")))


# --- the warm path's share of Powertools, without its per-call checks --------------------------

_emf_log = _emf.logger


def add_metric(name: str, unit: MetricUnit, value: float) -> None:
    """`metrics.add_metric` for a name, unit and number of ours (valid by construction), in about a tenth of the time.

    What Powertools' add_metric leaves in the metric set, without re-validating the name, unit and
    resolution on every call. Whenever Powertools would do more than store the value (publish a full set of
    100, or log at debug level), the call is Powertools' own.
    """
    metric_set = metrics.provider.metric_set
    metric = metric_set.get(name)
    if (
        len(metric_set) >= _emf.MAX_METRICS - 1
        or (metric is not None and len(metric["Value"]) >= _emf.MAX_METRICS - 1)
        or _emf_log.isEnabledFor(logging.DEBUG)
    ):
        metrics.add_metric(name=name, unit=unit, value=value)
        return
    if metric is None:
        metric = metric_set[name] = defaultdict(list)
    metric["Unit"] = unit.value
    metric["StorageResolution"] = 60
    metric["Value"].append(float(value))


def _jmespath_false(value: Any) -> bool:
    # JMESPath's own test (jmespath.visitor.TreeInterpreter._is_false): 0 is true, "" [] {} null false are not.
    return value == "" or value == [] or value == {} or value is None or value is False


def _field(value: Any, key: str) -> Any:
    try:
        return value.get(key)
    except AttributeError:  # not an object: JMESPath gives null
        return None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def correlation_id(event: Any) -> Any:
    """What the JMESPath `CORRELATION_ID_PATH` finds in an event, in plain Python (a JMESPath search costs ~10 µs):

    requestContext.requestId || headers."x-amzn-trace-id" || Records[0].responseElements."x-amz-request-id"
    || Records[0].messageId || id
    """
    found = _field(_field(event, "requestContext"), "requestId")
    if _jmespath_false(found):
        found = _field(_field(event, "headers"), "x-amzn-trace-id")
    if _jmespath_false(found):
        record = _first(_field(event, "Records"))
        found = _field(_field(record, "responseElements"), "x-amz-request-id")
        if _jmespath_false(found):
            found = _field(record, "messageId")
    if _jmespath_false(found):
        found = _field(event, "id")
    return found

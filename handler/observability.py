"""Powertools Logger, Metrics and Tracer: created once, shared by every adapter."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

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


def count_non_finite(rows: int) -> None:
    """Rows the model answered NaN or infinity for: never served, always counted."""
    metrics.add_metric(name="NonFiniteOutputs", unit=MetricUnit.Count, value=rows)

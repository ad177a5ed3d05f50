"""Powertools Logger, Metrics and Tracer: created once, shared by every adapter."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "skewless")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "skewless"), service=SERVICE)
# Without the X-Ray daemon (locally, in tests) the tracer is disabled by Powertools itself.
tracer = Tracer(service=SERVICE)

# The core logs with the standard library ("skewless.*"); give those records the JSON format too.
copy_config_to_registered_loggers(source_logger=logger, include={"skewless"})

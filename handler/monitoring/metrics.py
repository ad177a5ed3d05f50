"""Inference metrics, for every trigger: a Service observer sees each served batch, whatever brought it.

`InferenceTime` (the model call, in ms) and `BatchSize` (rows), once per batch: an HTTP request, a direct
invoke, an SQS message, a Map batch, each chunk of an S3 object. As MLServer's data plane records them
once for REST, gRPC and Kafka alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from handler.core.service import Prediction, Service
from handler.observability import add_metric


def record(columns: Mapping[str, np.ndarray], prediction: Prediction) -> None:
    """The observer: one InferenceTime and one BatchSize value per served batch."""
    add_metric("InferenceTime", MetricUnit.Milliseconds, prediction.timings.inference_seconds * 1e3)
    add_metric("BatchSize", MetricUnit.Count, prediction.timings.batch_size)


def attach(service: Service) -> None:
    service.observers.append(record)

"""S3 objects created under LABELS_PREFIX: ground-truth labels, joined with the captured rows of their period.

The same S3 notification (or EventBridge event) as an S3 job's, for keys under LABELS_PREFIX. Each labels object
is joined by inference id with the rows data capture wrote (`monitoring/quality/online.py`), and the model's
quality on them is emitted as EMF metrics (`monitoring/quality/emf.py`: `ModelQuality` per metric,
`ModelQualityDegradation` for the alarm) and logged, with the slices that fell most. An S3 fault raises, so
Lambda retries the event (then sends it to the on-failure destination, as for S3 jobs); what retrying cannot fix
(no data capture to join with, a problem the model's files cannot settle) is logged and the event is done.
"""

from __future__ import annotations

from typing import Any

from handler import aws
from handler.core.service import Service
from handler.monitoring.quality.emf import degradation, emit
from handler.monitoring.quality.online import assess_labels
from handler.monitoring.quality.problem import ProblemError
from handler.monitoring.quality.report import QualityInputError
from handler.observability import logger
from handler.settings import Settings
from handler.triggers.s3.event import objects_in_event


def names_labels(event: dict[str, Any], labels_prefix: str) -> bool:
    """Whether the event's objects are labels (S3 names one object an event record; one under the prefix decides)."""
    return any(ref.key.startswith(labels_prefix) for ref in objects_in_event(event))


def handle_event(event: dict[str, Any], context: Any, service: Service, settings: Settings) -> dict[str, Any]:
    """Join each labels object of the event with the captured rows and emit the quality metrics."""
    prefix = settings.labels_prefix or ""
    done = []
    for ref in objects_in_event(event):
        if not prefix or not ref.key.startswith(prefix):
            logger.info("not labels: not under LABELS_PREFIX", extra={"key": ref.key})
            continue
        done.append(_labels_object(ref.bucket, ref.key, service, settings))
    return {"labels": done}


def _labels_object(bucket: str, key: str, service: Service, settings: Settings) -> dict[str, Any]:
    where: dict[str, Any] = {"bucket": bucket, "key": key}
    if settings.capture_s3_uri is None:
        logger.warning(
            "labels arrived but data capture is off (CAPTURE_S3_URI): nothing to join them with", extra=where
        )
        return {**where, "status": "no_capture"}
    try:
        evaluation, period = assess_labels(
            aws.client("s3"), bucket, key, settings.labels_prefix or "", settings.capture_s3_uri, service.artifacts
        )
    except (QualityInputError, ProblemError) as exc:  # the model's files: retrying cannot help
        logger.warning("labels not evaluated", extra={**where, "reason": str(exc)})
        return {**where, "status": "not_evaluated", "reason": str(exc)}
    emit(evaluation)
    summary = {
        **where,
        "status": "evaluated",
        "hours": [f"{h:%Y/%m/%d/%H}" for h in (period[0], period[-1])],
        "rows_joined": evaluation.rows_joined,
        "unmatched_labels": evaluation.unmatched_labels,
        "unlabelled_rows": evaluation.unlabelled_rows,
        "malformed_labels": evaluation.unusable.count,
        "degraded": evaluation.degraded,
    }
    extra = {**summary, "degradation": degradation(evaluation), "worst_slices": evaluation.worst_slices[:3]}
    if evaluation.degraded:
        logger.warning("model quality fell below its baseline", extra=extra)
    else:
        logger.info("model quality measured", extra=extra)
    return summary

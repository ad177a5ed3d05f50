"""Step Functions Distributed Map batches: `{"BatchInput": {...}, "Items": [...]}` -> one answer per item.

An ItemBatcher hands the function a batch of items read from S3 (rows of a CSV, JSON Lines or
Parquet object). Each item is one request row: an object keyed by input (a CSV ItemReader gives
every value as a string, so numbers are parsed from strings whatever NUMERIC_STRINGS says), or,
for a one-input model, the value itself. The answer:

    {"predictions": [one per item, in order, null for a rejected item],
     "errors": [{"item": i, "reasons": [{"input": ..., "reason": ...}]}],
     "model_version": "..."}

A bad item never fails its batch; a fault of ours (the model unavailable) does, so the Map's
Retry and ToleratedFailurePercentage apply to it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from handler.core.answer import per_instance
from handler.core.coerce import Coercer
from handler.core.service import Service
from handler.errors import BadRequest, FieldError
from handler.observability import count_non_finite, logger, metrics


def is_batch(event: Any) -> bool:
    """A Distributed Map ItemBatcher's event: an object with an `Items` array (and maybe `BatchInput`)."""
    return isinstance(event, dict) and isinstance(event.get("Items"), list) and set(event) <= {"Items", "BatchInput"}


def handle_event(event: dict[str, Any], service: Service) -> dict[str, Any]:
    """Answer every item of a batch, in order; rejected items are null with their reasons listed."""
    items = event["Items"]
    if len(items) > service.policy.max_batch_size:
        raise BadRequest(
            f"the batch holds {len(items)} items, over MAX_BATCH_SIZE={service.policy.max_batch_size}: "
            f"lower the ItemBatcher's MaxItemsPerBatch"
        )
    # Items from a CSV ItemReader are strings by nature: the same coercer, parsing numbers from them.
    coercer = Coercer(service.artifacts.signature, replace(service.policy, numeric_strings="accept"))
    columns, field_errors, good = coercer.coerce_rows(items)
    answers: list[Any] = [None] * len(items)
    reasons: dict[int, list[FieldError]] = {}
    for e in field_errors:
        reasons.setdefault(e.instance or 0, []).append(e)
    if len(good):
        prediction = service.run(columns)
        values = per_instance(prediction.outputs, service.output_names)
        if prediction.output_problems:
            count_non_finite(len(prediction.output_problems))
        for position, item in enumerate(good.tolist()):
            problems = prediction.problems.get(position)
            if problems:
                reasons[item] = [FieldError(item, e.feature, e.reason) for e in problems]
            else:
                answers[item] = values[position]
    errors = [
        {"item": i, "reasons": [{"input": e.feature, "reason": e.reason} for e in reasons[i]]} for i in sorted(reasons)
    ]
    metrics.add_metric(name="BatchItemsPredicted", unit="Count", value=len(items) - len(errors))
    metrics.add_metric(name="BatchItemsRejected", unit="Count", value=len(errors))
    if errors:
        logger.info("batch items rejected", extra={"items": len(items), "rejected": len(errors)})
    return {"predictions": answers, "errors": errors, "model_version": service.artifacts.manifest.version}

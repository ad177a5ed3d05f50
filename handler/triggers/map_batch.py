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

A batch that would outlive the invocation is answered in pieces: before each piece the function asks
the context how long it has left and, short of time, answers what it has done, with the items still
to do: `"unfinished": {"from": i, "Items": [the items from i on]}` (every item before i answered or
rejected, the rest null). The state machine sends that answer back as the next event, and the
function goes on from item i: a timeout then costs only the piece it cut, and Retry redoes only that.
The batch's answer leaves the state machine only once it is whole.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from handler.core.answer import per_instance
from handler.core.coerce import Coercer
from handler.core.inference_ids import RowIds
from handler.core.service import Service
from handler.deadline import Deadline
from handler.errors import BadRequest, FieldError
from handler.observability import count_non_finite, logger, metrics

# The first piece of a batch, to learn how long an item takes before the rest is sized to the time left.
FIRST_PIECE = 64


def is_batch(event: Any) -> bool:
    """A Distributed Map ItemBatcher's event (an object with an `Items` array, and maybe `BatchInput`), or an
    answer of ours left unfinished, sent back to be finished."""
    if not isinstance(event, dict):
        return False
    if isinstance(event.get("Items"), list) and set(event) <= {"Items", "BatchInput"}:
        return True
    unfinished = event.get("unfinished")
    return isinstance(unfinished, dict) and isinstance(unfinished.get("Items"), list) and "predictions" in event


def handle_event(event: dict[str, Any], service: Service, context: Any = None) -> dict[str, Any]:
    """Answer the items of a batch, in order, from where an earlier invocation stopped, until done or out of time."""
    version = service.artifacts.manifest.version
    if "unfinished" in event:
        answers, reasons, start, items = _resumed(event, version)
    else:
        items, start, reasons = event["Items"], 0, {}
        answers = [None] * len(items)
    n = len(answers)
    if n > service.policy.max_batch_size:
        raise BadRequest(
            f"the batch holds {n} items, over MAX_BATCH_SIZE={service.policy.max_batch_size}: "
            f"lower the ItemBatcher's MaxItemsPerBatch"
        )
    # Items from a CSV ItemReader are strings by nature: the same coercer, parsing numbers from them.
    coercer = Coercer(service.artifacts.signature, replace(service.policy, numeric_strings="accept"))
    deadline, position, per_item = Deadline(context), start, 0.0
    request_id = str(getattr(context, "aws_request_id", "unknown"))  # item i's inference id: <request id>/<i>
    while position < n:
        size = _next_piece(n - position, per_item, deadline)
        if size == 0:
            break
        began = time.monotonic()
        piece = items[position - start : position - start + size]
        _answer_piece(piece, position, coercer, service, answers, reasons, request_id)
        seconds = time.monotonic() - began
        deadline.done(seconds)
        per_item = max(per_item, seconds / size)
        position += size
    errors = [
        {"item": i, "reasons": [{"input": e.feature, "reason": e.reason} for e in reasons[i]]} for i in sorted(reasons)
    ]
    new_errors = sum(1 for i in reasons if i >= start)
    metrics.add_metric(name="BatchItemsPredicted", unit="Count", value=position - start - new_errors)
    metrics.add_metric(name="BatchItemsRejected", unit="Count", value=new_errors)
    if new_errors:
        logger.info("batch items rejected", extra={"items": position - start, "rejected": new_errors})
    answer: dict[str, Any] = {"predictions": answers, "errors": errors, "model_version": version}
    if position < n:
        logger.info("batch answered in part before the deadline", extra={"answered": position, "items": n})
        answer["unfinished"] = {"from": position, "Items": items[position - start :]}
    return answer


def _resumed(event: dict[str, Any], version: str) -> tuple[list[Any], dict[int, list[FieldError]], int, list[Any]]:
    """An unfinished answer sent back: (answers so far, reasons so far, the next item, the items from there on).

    One batch, one model: an answer begun by another model version (a deployment in between) is refused.
    """
    predictions, errors, unfinished = event.get("predictions"), event.get("errors"), event["unfinished"]
    start, rest = unfinished.get("from"), unfinished["Items"]
    try:
        reasons = {
            e["item"]: [FieldError(e["item"], r["input"], r["reason"]) for r in e["reasons"]]
            for e in errors or ()
            if isinstance(start, int) and isinstance(e["item"], int) and 0 <= e["item"] < start
        }
    except (KeyError, TypeError):
        reasons = None
    fits = isinstance(predictions, list) and isinstance(start, int) and 0 < start == len(predictions) - len(rest)
    if not (fits and isinstance(errors, list) and reasons is not None and len(reasons) == len(errors)):
        raise BadRequest(
            "unfinished is not an answer of this function left unfinished: it holds predictions (one per item), "
            "errors, and unfinished.from and unfinished.Items (the items from there on)"
        )
    if event.get("model_version") != version:
        raise BadRequest(
            f"the batch was begun by model version {event.get('model_version')!r} and this function serves "
            f"{version!r}: one batch is answered by one model; run it again"
        )
    assert isinstance(predictions, list) and isinstance(start, int)  # for mypy: checked above
    return [*predictions[:start], *([None] * len(rest))], reasons, start, rest


def _next_piece(left: int, per_item: float, deadline: Deadline) -> int:
    """How many items to answer next: all that fit in the time left, a first piece to learn the pace, or none."""
    seconds = deadline.seconds_left()
    if seconds is None:
        return left
    if deadline.chunks == 0:
        return min(left, FIRST_PIECE)  # the pace is not known yet; every invocation answers at least this
    if seconds <= 0:
        return 0
    return min(left, int(seconds / (2 * per_item)) if per_item > 0 else left)


def _answer_piece(
    piece: list[Any],
    first: int,
    coercer: Coercer,
    service: Service,
    answers: list[Any],
    reasons: dict[int, list[FieldError]],
    request_id: str = "unknown",
) -> None:
    """Answer items first.., in `answers` (by item) and `reasons` (the rejected ones)."""
    columns, field_errors, good = coercer.coerce_rows(piece, first)
    for e in field_errors:
        reasons.setdefault(e.instance or 0, []).append(e)
    if not len(good):
        return
    prediction = service.run(columns, ids=RowIds(request_id, [first + offset for offset in good.tolist()]))
    values = per_instance(prediction.outputs, service.output_names)
    if prediction.output_problems:
        count_non_finite(len(prediction.output_problems))
    for position, offset in enumerate(good.tolist()):
        item = first + offset
        problems = prediction.problems.get(position)
        if problems:
            reasons[item] = [FieldError(item, e.feature, e.reason) for e in problems]
        else:
            answers[item] = values[position]

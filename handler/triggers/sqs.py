"""SQS -> one v1 prediction per message, each result sent on with the message's request id.

A message body is a TF-Serving v1 body with an optional `"request_id"` (a string of letters,
digits and `._:-`, at most 128; default: the SQS message id). Its result,
`{"request_id", "inference_id", "result_id", "predictions" | "outputs", "model", "version"}` (row i's
inference id is `<request_id>/<i>`), goes to
`RESULTS_QUEUE_URL` (with `request_id`, `result_id` and `status` message attributes) or, when that
is not set, to `s3://OUTPUT_BUCKET/RESULTS_S3_PREFIX<request_id>.json`.

Failures, split by whether a retry can help:
- The client's fault (not JSON, not a v1 body, a body that does not fit the input spec, a bad
  request id, a request id another message of the same batch already has): retrying cannot fix
  it, so the message is consumed and an error result
  `{"request_id", "result_id", "error", "code", "details"?, "model", "version"}` is delivered in its
  place. Nothing is dropped silently: the sender finds the reason where the result would have been
  (a duplicate's under its message id, so it never overwrites the first message's result).
- Our fault or the environment's (the model does not load, the destination is unreachable or
  refuses the result): the message is reported in `batchItemFailures`, so SQS redelivers it and,
  after the queue's maxReceiveCount, moves it to the dead-letter queue. The others are not.

Duplicates: SQS delivers at least once, and a `SendMessage` whose answer is lost is sent again, so
a consumer may see one result twice. `result_id` is the same for the same message answered by the
same model (a hash of the model's digest, the request id and the body), so consumers keep the
first of each `result_id`. The S3 result key is the request id (a redelivered message overwrites
the same object with the same content); on a FIFO results queue the result id is the
`MessageDeduplicationId`, so SQS drops the copy itself.
The whole batch failing is returned as a partial response listing every message (not raised),
which SQS treats the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from handler import aws
from handler.core import json_depth
from handler.core.inference_ids import RowIds
from handler.core.service import Service
from handler.errors import SkewlessError
from handler.observability import logger, metrics
from handler.settings import Settings

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class ClientError(Exception):
    """The message itself is wrong; the reason is delivered as its result."""

    def __init__(
        self, code: str, message: str, details: list[dict[str, object]] | None = None, file_under: str | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details
        self.file_under = file_under  # the id to file the error result under, when not the message's own


def handle_event(event: dict[str, Any], context: Any, service: Service, settings: Settings) -> dict[str, Any]:
    """Predict each message; return the partial batch response listing the messages to retry."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    owners: dict[str, str] = {}  # request id -> the message of this batch that has it

    def record_handler(record: SQSRecord) -> str:
        try:
            return process_message(record.body, record.message_id, service, settings, owners)
        except Exception as exc:
            # Reported to SQS as a batch item failure (redelivered, then dead-lettered): say why, once, here.
            # The reason is ours (no destination, the destination refused, the model not loading): no request values.
            logger.warning(
                "SQS message failed; SQS will redeliver it",
                extra={"message_id": record.message_id, "error_type": type(exc).__name__, "reason": _reason(exc)},
            )
            raise

    result: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
    failed = len(result.get("batchItemFailures", []))
    metrics.add_metric(name="SqsMessagesFailed", unit="Count", value=failed)
    return result


def fail_all(event: dict[str, Any], error: Exception) -> dict[str, Any]:
    """Every message of the batch left to SQS to redeliver, when the service could not start: logged, not raised
    (a raised error would carry its message, which may name a file or an S3 location, out of the function)."""
    ids = [r.get("messageId") for r in event.get("Records", []) if isinstance(r, dict) and r.get("messageId")]
    logger.warning(
        "SQS messages failed; SQS will redeliver them",
        extra={"message_ids": ids, "error_type": type(error).__name__, "reason": _reason(error)},
    )
    metrics.add_metric(name="SqsMessagesFailed", unit="Count", value=len(ids))
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


def _reason(exc: Exception) -> str:
    if isinstance(exc, SkewlessError):
        return exc.message
    return str(exc)[:500] or type(exc).__name__


def process_message(
    body: str, message_id: str, service: Service, settings: Settings, owners: dict[str, str] | None = None
) -> str:
    """One message -> its result (or error result) at the destination; returns the request id.

    `owners` maps the request ids of the batch so far to their messages: a second message with one is refused.
    """
    try:
        request_id, request = parse_message(body, message_id)
        if owners is not None:
            _claim(owners, request_id, message_id)
        # The request id names the rows: row i's inference id is <request_id>/<i>.
        answer = service.predict_v1(request, ids=RowIds(request_id))
        result: dict[str, Any] = {"request_id": request_id, "inference_id": request_id, **answer}
    except ClientError as exc:
        request_id = exc.file_under or exc_request_id(body, message_id)
        result = {"request_id": request_id, "error": exc.message, "code": exc.code}
        if exc.details is not None:
            result["details"] = exc.details
        logger.info("SQS message rejected", extra={"message_id": message_id, "code": exc.code})
    except SkewlessError as exc:
        if exc.status >= 500:
            raise  # ours (model or artifacts unavailable), maybe transient: let SQS redeliver it
        request_id = exc_request_id(body, message_id)
        result = {"request_id": request_id, **exc.to_body()}
        logger.info("SQS message rejected", extra={"message_id": message_id, "code": exc.code})
    result["result_id"] = result_id(service.artifacts.manifest.digest, request_id, body)
    result["model"] = service.name
    result["version"] = service.artifacts.manifest.version
    deliver(result, request_id, settings)
    return request_id


def _claim(owners: dict[str, str], request_id: str, message_id: str) -> None:
    """Note that this message has the request id, or refuse it: a second result would overwrite the first's."""
    owner = owners.setdefault(request_id, message_id)
    if owner != message_id:
        raise ClientError(
            "duplicate_request_id",
            f"request_id {request_id!r} is already used by message {owner} of this batch: each message needs its "
            f"own request_id; this message was not answered, and this error is filed under its message id",
            file_under=message_id,
        )


def result_id(model_digest: str, request_id: str, body: str) -> str:
    """The same for one message answered by one model, whatever the delivery: what consumers de-duplicate on."""
    h = hashlib.sha256()
    for part in (model_digest, request_id, body):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def parse_message(body: str, message_id: str) -> tuple[str, dict[str, Any]]:
    """The request id and the v1 body of a message, or ClientError saying what is wrong."""
    try:
        request = json_depth.loads(body)
    except json_depth.TooDeep as exc:  # the HTTP body's rule: an error result, not a crash and a dead letter
        raise ClientError(
            "bad_request", f"the message body is {exc}: a request is an object of arrays of rows"
        ) from None
    except ValueError as exc:
        raise ClientError("bad_request", f"the message body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ClientError("bad_request", "the message body must be a JSON object (a v1 request)")
    request_id = request.pop("request_id", message_id)
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise ClientError(
            "bad_request", "request_id must be a string of 1 to 128 letters, digits or . _ : - (or left out)"
        )
    return request_id, request


def exc_request_id(body: str, message_id: str) -> str:
    """The request id to file an error result under: the message's own if it is usable, else the message id."""
    try:
        rid = json_depth.loads(body).get("request_id")
    except (ValueError, AttributeError):  # TooDeep is a ValueError
        return message_id
    return rid if isinstance(rid, str) and REQUEST_ID.fullmatch(rid) else message_id


def deliver(result: dict[str, Any], request_id: str, settings: Settings) -> None:
    """Send a result to the results queue, or write it to S3 under its request id."""
    payload = json.dumps(result, ensure_ascii=False)
    if settings.results_queue_url:
        attributes = {
            "request_id": request_id,
            "result_id": result["result_id"],
            "status": "error" if "error" in result else "ok",
        }
        aws.send_message(
            aws.client("sqs"), settings.results_queue_url, payload, attributes, dedup_id=result["result_id"]
        )
        return
    if not settings.output_bucket:
        raise RuntimeError("SQS results have no destination: set RESULTS_QUEUE_URL or OUTPUT_BUCKET")
    key = f"{settings.results_s3_prefix}{request_id}.json"
    metadata = {"request-id": request_id, "result-id": result["result_id"]}
    aws.put_json(aws.client("s3"), settings.output_bucket, key, payload.encode(), metadata)

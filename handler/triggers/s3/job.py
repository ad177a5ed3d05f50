"""S3 "object created" -> predictions for every row of the file, streamed in chunks: the job itself.

Triggers: the S3 notification event and the same arriving through EventBridge (`event.py`; Step
Functions' Distributed Map builds the EventBridge shape for each object of a prefix). Only keys under
`INPUT_PREFIX` are read; anything else is logged and ignored, and `OUTPUT_PREFIX` lies outside it
(settings refuse an overlap), so the function never triggers itself. A key whose outputs would land on
another input's is refused with the reason (`keys.py`).

Input formats, by extension (each a module of `handler/formats/`, named in its registry): `.csv` for
models whose features are all scalars, `.parquet`, `.jsonl`/`.ndjson` for any model, `.npy` for one array
input or a tabular model. An empty object has no rows: it is done, with none.

Outputs, for `s3://bucket/INPUT_PREFIX/a/b.csv` (in `OUTPUT_BUCKET`, default the source bucket):
- the predictions, in the input's format: `OUTPUT_PREFIX/a/b.csv.csv` (CSV, with a header),
  `OUTPUT_PREFIX/a/b.parquet.parquet` (Parquet) or `OUTPUT_PREFIX/a/b.jsonl.jsonl` (JSON Lines,
  also for .npy inputs): one record per answered row, in input order, with its row number;
- `OUTPUT_PREFIX/a/b.csv.errors.jsonl`: one line per row that could not be answered, with every
  reason: `{"row": 5, "errors": [{"feature": "age", "reason": "..."}]}` (and its `line` where the
  reader knows it); always written (empty when all rows were good), so every row is in exactly
  one of the two;
- `OUTPUT_PREFIX/a/b.csv.done.json`: the completion marker, written last and conditionally
  (`marker.py`): the source (bucket, key, ETag, version id, the event's sequencer, size), status,
  format, counts (rows, predicted, errors), the outputs' keys, the model name and version, and the
  inference id (the key: each answered row's is `<key>/<row number>`). A reader waits for it. A file
  that cannot be read at all (missing columns, wrong npy dtype, invalid UTF-8, not Parquet) gets
  status "rejected", one file-level record in the errors object, and counts it.

One result per object version, whatever order S3 delivers the events in: every read is pinned to the
version the job started from (`handler/s3_objects.py`), so a replaced object stops the job cleanly
(its marker says "superseded") and the newer version's event does the work; an older version never
replaces a newer one's results, and while one version is being predicted another waits (its event
fails, and Lambda's retry comes back). Each output object is written whole or not at all (a single PUT,
or a multipart upload completed at the end and aborted on failure), and its content depends only on the
source and the model, so a retried or duplicated event rewrites the same bytes under the same keys. Any
failure of ours or of the environment (S3 unreachable, the model not loading) raises, so Lambda retries
the event and, after its retries, sends it to the on-failure destination.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from handler import aws
from handler.core.service import Service
from handler.deadline import Deadline
from handler.errors import FieldError
from handler.formats import jsonl
from handler.formats.base import FileRejected, Format, RowError
from handler.formats.registry import format_of, unsupported
from handler.observability import logger, metrics
from handler.s3_objects import ObjectChanged, S3Object
from handler.settings import Settings
from handler.triggers.s3.checkpoint import CONTINUE_KEY, Checkpoint, reopen, suspend
from handler.triggers.s3.chunks import predict_all
from handler.triggers.s3.event import ObjectRef, objects_in_event
from handler.triggers.s3.keys import OutputKeys, output_keys, reserved, source_metadata, tail_key
from handler.triggers.s3.marker import FINAL, Marker, MarkerTaken, read_marker, write_marker

# A lease outlives its invocation by this much (a function killed at its deadline frees it this late), and one
# taken without a Lambda context (tests, the CLI) lasts Lambda's longest timeout.
LEASE_MARGIN_S, LEASE_WITHOUT_CONTEXT_S = 60, 900
# The formats whose answers a later invocation can append to (CSV and JSON Lines answers; not Parquet's footer).
RESUMABLE = ("csv", "jsonl", "npy")
# Making the outputs visible takes a few requests: a "completing" marker left by a crash expires after this.
COMPLETING_S = 300


class OtherVersionInProgress(Exception):
    """Another version of this object is being predicted right now: the event fails, and Lambda's retry comes back."""


# --- the event -----------------------------------------------------------------------------


def handle_event(event: dict[str, Any], context: Any, service: Service, settings: Settings) -> dict[str, Any]:
    """Predict every object created under the input prefix; raise on our faults so Lambda retries."""
    refs = objects_in_event(event)
    s3 = aws.client("s3")
    done: list[dict[str, Any]] = []
    ignored: list[dict[str, str]] = []
    for ref in refs:
        why = _not_ours(ref, settings)
        if why is not None:
            logger.info("not predicting this object", extra={"key": ref.key, "reason": why})
            ignored.append({"bucket": ref.bucket, "key": ref.key, "reason": why})
            continue
        done.append(process_object(s3, ref, service, settings, context))
    return {"objects": done, "ignored": ignored}


def handle_continuation(event: dict[str, Any], context: Any, service: Service, settings: Settings) -> dict[str, Any]:
    """Go on with a job a previous invocation suspended (its continuation event names the object version)."""
    found = event[CONTINUE_KEY]
    ref = ObjectRef(
        str(found["bucket"]),
        str(found["key"]),
        str(found.get("etag") or ""),
        found.get("size"),
        found.get("version_id"),
        str(found.get("sequencer") or ""),
    )
    return {"objects": [process_object(aws.client("s3"), ref, service, settings, context)], "ignored": []}


def _not_ours(ref: ObjectRef, settings: Settings) -> str | None:
    if not ref.key.startswith(settings.input_prefix):
        return f"not under {settings.input_prefix}"
    if ref.key.endswith("/"):  # a "folder" placeholder made by the console: no rows to predict
        return "a folder, not a file"
    return reserved(ref.key, settings)


# --- one object ----------------------------------------------------------------------------


def process_object(
    s3: Any, ref: ObjectRef, service: Service, settings: Settings, context: Any = None
) -> dict[str, Any]:
    """Read, predict and write one input object version; returns its completion marker."""
    fmt = format_of(ref.key)
    out = output_keys(ref.bucket, ref.key, settings, (fmt or jsonl.FORMAT).suffix)
    model = {"name": service.name, "version": service.artifacts.manifest.version}
    # Pinned from its first read on: the object as it is now, which may be newer than the event's (the marker says
    # which version was read; the newer version's own event then finds it done).
    obj = S3Object(s3, ref.bucket, ref.key)
    for _ in range(3):  # a lease taken between our read and our write: read again and decide again
        previous = read_marker(s3, out.bucket, out.marker)
        held = read_marker(s3, out.bucket, out.checkpoint)
        settled = _settled(previous, held, ref, model)
        if settled is not None:
            return settled
        resume = Checkpoint.from_lease(held.body) if held.describes(ref) else None
        if resume is not None:  # a continuation, or the retry of one that failed: go on from where it stood
            obj = S3Object(s3, ref.bucket, ref.key, held.source.get("etag") or "", held.source.get("version_id"))
        body = _lease_body(
            "in_progress", _source(ref, obj) if resume is None else held.source, model, _lease_until(context)
        )
        if resume is not None:
            body["checkpoint"] = resume.to_dict()
        try:
            lease = write_marker(s3, out.bucket, out.checkpoint, body, held)
        except MarkerTaken:
            continue
        if held.body is not None:  # taken over: what the invocation before left open is an orphan, unless resumed
            _abort_orphans(s3, out, resume)
        try:
            return _run(s3, obj, fmt, out, lease, previous, service, settings, context, resume)
        except ObjectChanged:
            _release(s3, out)
            return _superseded(ref, "the object was replaced since its event: its newer version's event predicts it")
        except BaseException:
            _release(s3, out)  # failed: Lambda's retry starts over (and a lease that cannot go expires)
            raise
    raise MarkerTaken(f"s3://{out.bucket}/{out.checkpoint} kept changing: other invocations hold this object")


def _abort_orphans(s3: Any, out: OutputKeys, resume: Checkpoint | None) -> None:
    """Abort the outputs' uploads an earlier invocation left open (killed, or cut off from S3), but a checkpoint's.

    A duplicate delivery still running loses its uploads too: it fails, and its retry finds the object done.
    """
    keep = {str(u.get("upload_id")) for u in resume.uploads.values()} if resume is not None else set()
    orphans = sum(aws.abort_uploads(s3, out.bucket, key, keep) for key in (out.predictions, out.errors))
    if orphans:
        logger.info("aborted uploads an earlier invocation left open", extra={"key": out.predictions, "n": orphans})


def _settled(previous: Marker, held: Marker, ref: ObjectRef, model: dict[str, str]) -> dict[str, Any] | None:
    """The answer when this event needs no work (or must wait); None when it should predict the object."""
    if previous.status in FINAL and previous.describes(ref) and (previous.body or {}).get("model") == model:
        logger.info("already predicted, skipping redelivered event", extra={"key": ref.key})
        return previous.body
    if previous.is_newer_than(ref) or held.is_newer_than(ref):
        return _superseded(ref, "a newer version of the object has results already (or is being predicted)")
    # The same version under a lease is taken over: a retry after a failed attempt, or a duplicate delivery; both
    # write the same bytes, and the one whose marker comes second fails it and is retried into a no-op.
    if held.lease_held() and not held.describes(ref):
        raise OtherVersionInProgress(
            f"s3://{ref.bucket}/{ref.key}: another version is being predicted now; Lambda's retry comes back for it"
        )
    return None


def _run(
    s3: Any,
    obj: S3Object,
    fmt: Format | None,
    out: OutputKeys,
    lease: Marker,
    previous: Marker,
    service: Service,
    settings: Settings,
    context: Any = None,
    resume: Checkpoint | None = None,
) -> dict[str, Any]:
    """Predict the object under `lease`, publish the outputs, then the marker (over `previous`)."""
    lease_body = lease.body or {}
    model = lease_body["model"]
    kind = fmt or jsonl.FORMAT
    counts = dict(resume.counts) if resume is not None else {"rows": 0, "predicted": 0, "errors": 0}
    meta = source_metadata(obj.key)
    part = settings.s3_part_bytes
    rejection: FileRejected | None = None
    # Leaving this block by an exception aborts both uploads: nothing half-written becomes visible.
    with (
        aws.MultipartWriter(s3, out.bucket, out.predictions, kind.content_type, part, metadata=meta) as preds,
        aws.MultipartWriter(s3, out.bucket, out.errors, part_bytes=part, metadata=meta) as errs,
    ):
        if resume is not None:
            reopen(s3, out, resume, preds, errs)
        try:
            if fmt is None:
                raise FileRejected(unsupported(obj.key))
            deadline = Deadline(context) if fmt.name in RESUMABLE else None
            stop = predict_all(obj, fmt, service, settings, preds, errs, counts, resume, deadline)
        except FileRejected as exc:
            rejection = exc
        else:
            if stop is not None:
                return suspend(s3, out, lease, obj, preds, errs, counts, stop, context)
            previous = _withdraw(s3, out, lease, previous)
            preds.complete()
            errs.complete()
    source = {**lease_body["source"], "etag": obj.etag or "", "version_id": obj.version_id, "size": obj.size}
    marker: dict[str, Any] = {"status": "done" if rejection is None else "rejected", "source": source}
    marker["format"] = fmt.name if fmt else None
    if rejection is not None:
        logger.warning("input file rejected", extra={"key": obj.key, "reason": rejection.reason})
        counts = {"rows": 0, "predicted": 0, "errors": 1}  # the one file-level record covers every row
        previous = _withdraw(s3, out, lease, previous)
        _write_rejection(s3, out, rejection, _empty(fmt, service), kind.content_type, meta)
        marker["reason"] = rejection.reason
    marker.update(counts)
    marker["outputs"] = {"bucket": out.bucket, "predictions": out.predictions, "errors": out.errors}
    marker["model"] = model
    marker["inference_id"] = obj.key  # each answered row's is <key>/<row number>, what labels name it by
    write_marker(s3, out.bucket, out.marker, marker, previous)
    _release(s3, out, tails=resume is not None)
    metrics.add_metric(name="S3RowsPredicted", unit="Count", value=counts["predicted"])
    metrics.add_metric(name="S3RowsRejected", unit="Count", value=counts["errors"])
    logger.info("object predicted", extra={"key": obj.key, "status": marker["status"], **counts})
    return marker


def _withdraw(s3: Any, out: OutputKeys, lease: Marker, previous: Marker) -> Marker:
    """Before the outputs are replaced: hold the lease as `completing`, and take back an earlier marker.

    The lease first: one taken over by another invocation (ours expired) raises MarkerTaken, and nothing is
    published. Then an earlier marker says `in_progress`: a failure between the new outputs and the new
    marker must not leave it vouching for outputs it does not describe.
    """
    body = lease.body or {}
    completing = _lease_body("completing", body["source"], body["model"], time.time() + COMPLETING_S)
    write_marker(s3, out.bucket, out.checkpoint, completing, lease)
    if previous.body is None:
        return previous
    pending = {"status": "in_progress", "source": body["source"], "model": body["model"]}
    return write_marker(s3, out.bucket, out.marker, pending, previous)


def _release(s3: Any, out: OutputKeys, tails: bool = False) -> None:
    """Give the lease up (the marker is written, or a newer version took the object), and a checkpoint's tails."""
    keys = [out.checkpoint] + ([tail_key(out, "predictions"), tail_key(out, "errors")] if tails else [])
    for key in keys:
        with contextlib.suppress(Exception):  # a lease left behind only expires: it never blocks a version for good
            s3.delete_object(Bucket=out.bucket, Key=key)


def _source(ref: ObjectRef, obj: S3Object) -> dict[str, Any]:
    """What the marker says of the input: the version read (before the first read, the event's)."""
    return {
        "bucket": ref.bucket,
        "key": ref.key,
        "etag": obj.etag or ref.pinned_etag,
        "version_id": obj.version_id or ref.version_id,
        "sequencer": ref.sequencer or None,
        "size": obj.size if obj.size is not None else ref.size,
    }


def _lease_body(status: str, source: dict[str, Any], model: dict[str, Any], until: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "source": source, "model": model}
    if until is not None:
        body["lease_until"] = round(until, 3)
    return body


def _lease_until(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000 if callable(remaining) else LEASE_WITHOUT_CONTEXT_S
    return time.time() + seconds + LEASE_MARGIN_S


def _superseded(ref: ObjectRef, why: str) -> dict[str, Any]:
    logger.info("not predicting an old version", extra={"key": ref.key, "reason": why})
    src = {"bucket": ref.bucket, "key": ref.key, "etag": ref.pinned_etag, "version_id": ref.version_id}
    return {"status": "superseded", "source": {**src, "sequencer": ref.sequencer or None}, "reason": why}


def _write_rejection(
    s3: Any, out: OutputKeys, rejection: FileRejected, empty: bytes, content_type: str, meta: dict[str, str]
) -> None:
    """Nothing of a rejected file is published as a prediction: the one record covers every row."""
    record = RowError(None, rejection.line, [FieldError(None, rejection.feature, rejection.reason)])
    s3.put_object(Bucket=out.bucket, Key=out.predictions, Body=empty, ContentType=content_type, Metadata=meta)
    body = record.to_json().encode() + b"\n"
    s3.put_object(Bucket=out.bucket, Key=out.errors, Body=body, ContentType="application/x-ndjson", Metadata=meta)


def _empty(fmt: Format | None, service: Service) -> bytes:
    """The predictions object of a rejected file: no rows (a CSV header; for Parquet, a valid file with the schema)."""
    parts: list[bytes] = []

    class _Collect:
        def write(self, data: bytes) -> None:
            parts.append(data)

    (fmt or jsonl.FORMAT).writer(_Collect(), service.artifacts.signature).close()
    return b"".join(parts)

"""S3 "object created" -> predictions for every row of the file, streamed in chunks: the job itself.

Triggers: the S3 notification event (`Records`, keys URL-encoded: '+' for a space, '%xx' for
the rest) and the same arriving through EventBridge (`detail-type: Object Created`, keys not
encoded; Step Functions' Distributed Map builds this shape for each object of a prefix). Only
keys under `INPUT_PREFIX` are read; anything else is logged and ignored, and `OUTPUT_PREFIX`
lies outside it (settings refuse an overlap), so the function never triggers itself.

Input formats, by extension (each a module of `handler/formats/`, named in its registry):
- `.csv`, for models whose features are all scalars: a header naming the features, in any order;
  read by pyarrow, every cell as text (numbers parsed whatever NUMERIC_STRINGS says);
- `.parquet`: one column per feature (a list column for an array input), read a row group at a
  time over ranged GETs;
- `.jsonl` / `.ndjson`, for any model: one request row per line, as in `{"instances": [...]}`;
- `.npy`, for a model with one array input ([n, *its shape]) or a tabular model ([n, features]).

Outputs, for `s3://bucket/INPUT_PREFIX/a/b.csv` (in `OUTPUT_BUCKET`, default the source bucket):
- the predictions, in the input's format: `OUTPUT_PREFIX/a/b.csv.csv` (CSV, with a header),
  `OUTPUT_PREFIX/a/b.parquet.parquet` (Parquet) or `OUTPUT_PREFIX/a/b.jsonl.jsonl` (JSON Lines,
  also for .npy inputs): one record per answered row, in input order, with its row number
  (each format's module says what its answers hold);
- `OUTPUT_PREFIX/a/b.csv.errors.jsonl`: one line per row that could not be answered, with every
  reason: `{"row": 5, "errors": [{"feature": "age", "reason": "..."}]}` (and its `line` where the
  reader knows it); always written (empty when all rows were good), so every row is in exactly
  one of the two;
- `OUTPUT_PREFIX/a/b.csv.done.json`: written last, the completion marker (while an earlier marker's
  outputs are being replaced, it says `"status": "in_progress"`): source bucket, key, etag and
  size, status, format, counts (rows, predicted, errors), the outputs' keys, the model name and
  version. A reader waits for it. A file that cannot be read at all (missing columns, wrong npy
  dtype, invalid UTF-8, not Parquet) gets status "rejected" and one file-level record in the
  errors object.

Each output object is written whole or not at all (a single PUT, or a multipart upload completed
at the end and aborted on failure), and its content depends only on the source and the model, so
a retried or duplicated event rewrites the same bytes under the same keys. A marker that already
names the same source etag and model version makes a redelivered event a no-op. Any failure of
ours or of the environment (S3 unreachable, the object gone, the model not loading) raises, so Lambda
retries the event and, after its retries, sends it to the on-failure destination.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import numpy as np

from handler import aws
from handler.core.service import Service
from handler.core.signature import TensorSpec
from handler.errors import FieldError
from handler.formats import jsonl
from handler.formats.base import Chunk, FileRejected, Format, PredictionWriter, RowError, row_order
from handler.formats.registry import extensions, format_of
from handler.observability import count_non_finite, logger, metrics
from handler.settings import Settings
from handler.triggers.s3.pipeline import WriteBehind, prefetched

ERRORS_SUFFIX = ".errors.jsonl"
MARKER_SUFFIX = ".done.json"
# A chunk's coerced input, when S3_CHUNK_ROWS does not say: churn ~32k rows, 28x28 images ~10k, 224x224x3 floats 64.
CHUNK_BYTES = 8 << 20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 64, 65_536


@dataclass(frozen=True)
class ObjectRef:
    """One created object named by an event: decoded key, and the etag the event saw."""

    bucket: str
    key: str
    etag: str = ""
    size: int | None = None


@dataclass(frozen=True)
class OutputKeys:
    """Where the results of one input object go."""

    bucket: str
    predictions: str
    errors: str
    marker: str


# --- the event -----------------------------------------------------------------------------


def handle_event(event: dict[str, Any], context: Any, service: Service, settings: Settings) -> dict[str, Any]:
    """Predict every object created under the input prefix; raise on our faults so Lambda retries."""
    refs = objects_in_event(event)
    s3 = aws.client("s3")
    done: list[dict[str, Any]] = []
    ignored: list[dict[str, str]] = []
    for ref in refs:
        if not ref.key.startswith(settings.input_prefix):
            logger.info("ignoring object outside the input prefix", extra={"key": ref.key})
            ignored.append({"bucket": ref.bucket, "key": ref.key, "reason": f"not under {settings.input_prefix}"})
            continue
        if ref.key.endswith("/"):  # a "folder" placeholder made by the console: no rows to predict
            ignored.append({"bucket": ref.bucket, "key": ref.key, "reason": "a folder, not a file"})
            continue
        done.append(process_object(s3, ref, service, settings))
    return {"objects": done, "ignored": ignored}


def objects_in_event(event: dict[str, Any]) -> list[ObjectRef]:
    """The created objects an S3 notification or an EventBridge "Object Created" event names."""
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

    if "Records" in event:
        refs = []
        for record in S3Event(event).records:
            if not record.event_name.startswith("ObjectCreated:"):
                logger.info("ignoring S3 event", extra={"event_name": record.event_name})
                continue
            obj = record.s3.get_object
            # Notification keys are URL-encoded the way HTML forms are: '+' is a space.
            refs.append(ObjectRef(record.s3.bucket.name, unquote_plus(obj.key), obj.etag, obj.get("size")))
        return refs
    if event.get("source") == "aws.s3" and "detail" in event:
        eb = S3EventBridgeNotificationEvent(event)
        if eb.detail_type != "Object Created":
            logger.info("ignoring EventBridge S3 event", extra={"detail_type": eb.detail_type})
            return []
        detail = eb.detail
        return [ObjectRef(detail.bucket.name, detail.object.key, detail.object.etag, detail.object.size)]
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return []
    raise ValueError("not an S3 notification or an EventBridge S3 event")


def output_keys(ref: ObjectRef, settings: Settings, predictions_suffix: str = ".jsonl") -> OutputKeys:
    """The same relative key under the output prefix, with our suffixes."""
    rel = ref.key[len(settings.input_prefix) :]
    base = settings.output_prefix + rel
    return OutputKeys(
        bucket=settings.output_bucket or ref.bucket,
        predictions=base + predictions_suffix,
        errors=base + ERRORS_SUFFIX,
        marker=base + MARKER_SUFFIX,
    )


# --- one object ----------------------------------------------------------------------------


def process_object(s3: Any, ref: ObjectRef, service: Service, settings: Settings) -> dict[str, Any]:
    """Read, predict and write one input object; returns its completion marker."""
    fmt = format_of(ref.key)
    out = output_keys(ref, settings, (fmt or jsonl.FORMAT).suffix)
    model = {"name": service.name, "version": service.artifacts.manifest.version}
    previous = _read_marker(s3, out)
    if previous is not None and _redelivered(previous, ref, model):
        logger.info("already predicted, skipping redelivered event", extra={"key": ref.key})
        return previous
    counts = {"rows": 0, "predicted": 0, "errors": 0}
    source: dict[str, Any] = {"bucket": ref.bucket, "key": ref.key, "etag": _etag(ref.etag), "size": ref.size}
    rejection: FileRejected | None = None
    if previous is not None:
        # The outputs are about to be replaced: first withdraw the old marker, or a failure between the
        # new outputs and the new marker would leave it vouching for outputs it does not describe.
        pending = {"status": "in_progress", "source": source, "model": model}
        aws.put_json(s3, out.bucket, out.marker, json.dumps(pending).encode())
    content_type = (fmt or jsonl.FORMAT).content_type
    # Leaving this block by an exception aborts both uploads: nothing half-written becomes visible.
    with (
        aws.MultipartWriter(s3, out.bucket, out.predictions, content_type, settings.s3_part_bytes) as preds,
        aws.MultipartWriter(s3, out.bucket, out.errors, part_bytes=settings.s3_part_bytes) as errs,
    ):
        try:
            if fmt is None:
                raise FileRejected(f"unsupported file type {posixpath.splitext(ref.key)[1]!r}: use {extensions()}")
            writer = fmt.writer(preds, service.artifacts.signature)
            try:
                with (
                    contextlib.closing(prefetched(_chunks(s3, ref, fmt, service, settings, source))) as chunks,
                    WriteBehind() as behind,
                ):
                    for chunk in chunks:
                        _write_chunk(chunk, service, writer, errs, counts, behind)
                writer.close()
            finally:
                writer.discard()
        except FileRejected as exc:
            rejection = exc
        else:
            preds.complete()
            errs.complete()
    status = "done" if rejection is None else "rejected"
    marker: dict[str, Any] = {"status": status, "source": source, "format": fmt.name if fmt else None}
    if rejection is not None:
        logger.warning("input file rejected", extra={"key": ref.key, "reason": rejection.reason})
        counts = {"rows": 0, "predicted": 0, "errors": 0}
        _write_rejection(s3, out, rejection, _empty(fmt, service), content_type)
        marker["reason"] = rejection.reason
    marker.update(counts)
    marker["outputs"] = {"bucket": out.bucket, "predictions": out.predictions, "errors": out.errors}
    marker["model"] = model
    aws.put_json(s3, out.bucket, out.marker, json.dumps(marker, indent=1, ensure_ascii=False).encode())
    metrics.add_metric(name="S3RowsPredicted", unit="Count", value=counts["predicted"])
    metrics.add_metric(name="S3RowsRejected", unit="Count", value=counts["errors"])
    logger.info("object predicted", extra={"key": ref.key, "status": marker["status"], **counts})
    return marker


def _redelivered(previous: dict[str, Any], ref: ObjectRef, model: dict[str, str]) -> bool:
    """The event of a source and model already predicted: the outputs are there, complete."""
    return bool(
        previous.get("status") in ("done", "rejected")
        and ref.etag
        and previous.get("source", {}).get("etag") == _etag(ref.etag)
        and previous.get("model") == model
    )


def _write_rejection(s3: Any, out: OutputKeys, rejection: FileRejected, empty: bytes, content_type: str) -> None:
    """Nothing of a rejected file is published as a prediction: the one record covers every row."""
    record = RowError(None, rejection.line, [FieldError(None, rejection.feature, rejection.reason)])
    s3.put_object(Bucket=out.bucket, Key=out.predictions, Body=empty, ContentType=content_type)
    body = record.to_json().encode() + b"\n"
    s3.put_object(Bucket=out.bucket, Key=out.errors, Body=body, ContentType="application/x-ndjson")


def _empty(fmt: Format | None, service: Service) -> bytes:
    """The predictions object of a rejected file: no rows (a CSV header; for Parquet, a valid file with the schema)."""
    parts: list[bytes] = []

    class _Collect:
        def write(self, data: bytes) -> None:
            parts.append(data)

    (fmt or jsonl.FORMAT).writer(_Collect(), service.artifacts.signature).close()
    return b"".join(parts)


def _write_chunk(
    chunk: Chunk, service: Service, writer: PredictionWriter, errs: Any, counts: dict, behind: WriteBehind
) -> None:
    errors = list(chunk.errors)
    n_good = len(chunk.rows)
    if n_good:
        prediction = service.run(chunk.columns, coded=chunk.coded)
        outputs, rows, lines = prediction.outputs, chunk.rows, chunk.lines
        problems = prediction.problems
        if prediction.output_problems:
            count_non_finite(len(prediction.output_problems))
        if problems:
            # Rows that overflowed after preprocessing, or that the model answered NaN for: errors, not answers.
            for i, errs_i in sorted(problems.items()):
                errors.append(RowError(int(rows[i]), int(lines[i]) if lines is not None else None, errs_i))
            keep = np.ones(n_good, dtype=bool)
            keep[list(problems)] = False
            outputs = {name: arr[keep] for name, arr in outputs.items()}
            rows, lines = rows[keep], (lines[keep] if lines is not None else None)
            errors.sort(key=row_order)
        if len(rows):
            behind.submit(writer.write, rows, lines, outputs)
        n_good = len(rows)
    if errors:
        behind.submit(errs.write, "".join(e.to_json() + "\n" for e in errors).encode())
    counts["rows"] += n_good + len(errors)
    counts["predicted"] += n_good
    counts["errors"] += len(errors)


def _read_marker(s3: Any, out: OutputKeys) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=out.bucket, Key=out.marker)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    try:
        data: dict[str, Any] = json.loads(body)
        return data
    except ValueError:
        return None


def _etag(raw: str) -> str:
    return raw.strip('"')


def chunk_rows(features: Sequence[TensorSpec], setting: int = 0) -> int:
    """Rows a chunk holds: S3_CHUNK_ROWS, or by default as many as make CHUNK_BYTES of coerced input.

    Bytes, not rows, bound a chunk: 8,192 rows of churn (about 1 MiB) leave the per-chunk costs (numpy
    calls, a drift window) dominant (1M rows from Parquet: 0.85 s at 8,192 rows a chunk, 0.55 s at
    32,768), while 8,192 images of 224x224x3 float32 would take 4.9 GB.
    """
    if setting:
        return setting
    per_example = max(1, sum(f.example_bytes for f in features))
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, CHUNK_BYTES // per_example))


def _chunks(
    s3: Any, ref: ObjectRef, fmt: Format, service: Service, settings: Settings, source: dict[str, Any]
) -> Iterator[Chunk]:
    obj = aws.S3Object(s3, ref.bucket, ref.key)
    try:
        yield from fmt.read(obj, service.coercer, chunk_rows(service.coercer.features, settings.s3_chunk_rows))
    finally:
        # Record what was actually read: the object may have been replaced since the event.
        if obj.etag is not None:
            source["etag"] = obj.etag
        if obj.size is not None:
            source["size"] = obj.size

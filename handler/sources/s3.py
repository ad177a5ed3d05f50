"""S3 "object created" -> predictions for every row of the file, streamed in chunks.

Triggers: the S3 notification event (`Records`, keys URL-encoded: '+' for a space, '%xx' for
the rest) and the same arriving through EventBridge (`detail-type: Object Created`, keys not
encoded). Only keys under `INPUT_PREFIX` are read; anything else is logged and ignored, and
`OUTPUT_PREFIX` lies outside it (settings refuse an overlap), so the function never triggers itself.

Input formats, by extension (readers in `file_chunks.py` and `csv_chunks.py`):
- `.jsonl` / `.ndjson`, for any model: one request row per line, as in `{"instances": [...]}`
  (an object keyed by input, the value itself for a one-input model, or an ordered array of
  scalar features).
- `.csv`, for models whose features are all scalars: a header row naming the features, in any
  order; cells are text, so numbers are parsed whatever `NUMERIC_STRINGS` says. Blank lines are
  skipped.
- `.npy`, for a model with one array input ([n, *its shape]) or a tabular model ([n, features]
  in feature order; unicode when some feature is a string). Object arrays need pickle to load,
  which can run code, so they are refused (`allow_pickle` is never enabled); so are structured
  arrays.

Outputs, for `s3://bucket/INPUT_PREFIX/a/b.csv` (in `OUTPUT_BUCKET`, default the source bucket):
- `OUTPUT_PREFIX/a/b.csv.jsonl`: one line per row that was answered, in input order:
  `{"row": 0, "line": 2, "prediction": [0.22]}` (`row` counts data rows from 0, `line` is the
  1-based line in the file where the row starts; `.npy` rows have no line); the prediction is
  what TF Serving gives for one instance (an object keyed by output for several outputs);
- `OUTPUT_PREFIX/a/b.csv.errors.jsonl`: one line per row that could not, with every reason:
  `{"row": 5, "line": 7, "errors": [{"feature": "age", "reason": "..."}]}`; always written (empty
  when all rows were good), so every row is in exactly one of the two;
- `OUTPUT_PREFIX/a/b.csv.done.json`: written last, the completion marker (while an earlier marker's
  outputs are being replaced, it says `"status": "in_progress"`): source bucket, key,
  etag and size, status, counts (rows, predicted, errors), the model name and version. A reader
  waits for it. A file that cannot be read at all (missing header columns, wrong npy dtype,
  invalid UTF-8) gets status "rejected" and one file-level record in the errors object.

Each output object is written whole or not at all (a single PUT, or a multipart upload completed
at the end and aborted on failure), and its content depends only on the source and the model, so
a retried or duplicated event rewrites the same bytes under the same keys. A marker that already
names the same source etag and model version makes a redelivered event a no-op. Any failure of
ours or of the environment (S3 unreachable, the object gone, the model not loading) raises, so Lambda
retries the event and, after its retries, sends it to the on-failure destination.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import numpy as np

from handler.core.answer import per_instance
from handler.core.service import Service
from handler.errors import FieldError
from handler.observability import count_non_finite, logger, metrics
from handler.settings import Settings
from handler.sources import aws
from handler.sources.csv_chunks import check_csv_model, csv_chunks, text_coercer
from handler.sources.file_chunks import (
    NPY_HEADER_BYTES,
    Chunk,
    FileRejected,
    RowError,
    jsonl_chunks,
    npy_chunks,
    npy_layout,
)

PREDICTIONS_SUFFIX = ".jsonl"
ERRORS_SUFFIX = ".errors.jsonl"
MARKER_SUFFIX = ".done.json"
CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
NPY_EXTENSIONS = (".npy",)


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


def output_keys(ref: ObjectRef, settings: Settings) -> OutputKeys:
    """The same relative key under the output prefix, with our suffixes."""
    rel = ref.key[len(settings.input_prefix) :]
    base = settings.output_prefix + rel
    return OutputKeys(
        bucket=settings.output_bucket or ref.bucket,
        predictions=base + PREDICTIONS_SUFFIX,
        errors=base + ERRORS_SUFFIX,
        marker=base + MARKER_SUFFIX,
    )


# --- one object ----------------------------------------------------------------------------


def process_object(s3: Any, ref: ObjectRef, service: Service, settings: Settings) -> dict[str, Any]:
    """Read, predict and write one input object; returns its completion marker."""
    out = output_keys(ref, settings)
    model = {"name": service.name, "version": service.artifacts.manifest.version}
    previous = _read_marker(s3, out)
    # A redelivered event for a source and model already predicted: the outputs are there, complete.
    if (
        previous
        and previous.get("status") in ("done", "rejected")
        and ref.etag
        and previous.get("source", {}).get("etag") == _etag(ref.etag)
        and previous.get("model") == model
    ):
        logger.info("already predicted, skipping redelivered event", extra={"key": ref.key})
        return previous
    fmt = _format_of(ref.key)
    counts = {"rows": 0, "predicted": 0, "errors": 0}
    source: dict[str, Any] = {"bucket": ref.bucket, "key": ref.key, "etag": _etag(ref.etag), "size": ref.size}
    rejection: FileRejected | None = None
    if previous is not None:
        # The outputs are about to be replaced: first withdraw the old marker, or a failure between the
        # new outputs and the new marker would leave it vouching for outputs it does not describe.
        pending = {"status": "in_progress", "source": source, "model": model}
        aws.put_json(s3, out.bucket, out.marker, json.dumps(pending).encode())
    # Leaving this block by an exception aborts both uploads: nothing half-written becomes visible.
    with (
        aws.MultipartWriter(s3, out.bucket, out.predictions, part_bytes=settings.s3_part_bytes) as preds,
        aws.MultipartWriter(s3, out.bucket, out.errors, part_bytes=settings.s3_part_bytes) as errs,
    ):
        try:
            if fmt is None:
                raise FileRejected(
                    f"unsupported file type {posixpath.splitext(ref.key)[1]!r}: "
                    f"use .csv (with a header), .jsonl/.ndjson or .npy"
                )
            for chunk in _chunks(s3, ref, fmt, service, settings, source):
                _write_chunk(chunk, service, preds, errs, counts)
        except FileRejected as exc:
            rejection = exc
        else:
            preds.complete()
            errs.complete()
    marker: dict[str, Any] = {"status": "done" if rejection is None else "rejected", "source": source, "format": fmt}
    if rejection is not None:
        # Nothing of a rejected file is published as a prediction: the one record covers every row.
        logger.warning("input file rejected", extra={"key": ref.key, "reason": rejection.reason})
        counts = {"rows": 0, "predicted": 0, "errors": 0}
        record = RowError(None, rejection.line, [FieldError(None, rejection.feature, rejection.reason)])
        s3.put_object(Bucket=out.bucket, Key=out.predictions, Body=b"", ContentType="application/x-ndjson")
        s3.put_object(
            Bucket=out.bucket,
            Key=out.errors,
            Body=record.to_json().encode() + b"\n",
            ContentType="application/x-ndjson",
        )
        marker["reason"] = rejection.reason
    marker.update(counts)
    marker["outputs"] = {"bucket": out.bucket, "predictions": out.predictions, "errors": out.errors}
    marker["model"] = model
    aws.put_json(s3, out.bucket, out.marker, json.dumps(marker, indent=1, ensure_ascii=False).encode())
    metrics.add_metric(name="S3RowsPredicted", unit="Count", value=counts["predicted"])
    metrics.add_metric(name="S3RowsRejected", unit="Count", value=counts["errors"])
    logger.info("object predicted", extra={"key": ref.key, "status": marker["status"], **counts})
    return marker


def _write_chunk(chunk: Chunk, service: Service, preds: aws.MultipartWriter, errs: Any, counts: dict) -> None:
    errors = list(chunk.errors)
    n_good = len(chunk.rows)
    if n_good:
        prediction = service.run(chunk.columns)
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
            errors.sort(key=lambda r: (r.row is None, r.row or 0))
        if len(rows):
            preds.write(prediction_lines(rows, lines, outputs, service.output_names).encode())
        n_good = len(rows)
    if errors:
        errs.write("".join(e.to_json() + "\n" for e in errors).encode())
    counts["rows"] += n_good + len(errors)
    counts["predicted"] += n_good
    counts["errors"] += len(errors)


def prediction_lines(
    rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray], names: list[str]
) -> str:
    """One JSON line per answered row: `{"row": 0, "line": 2, "prediction": [0.22]}` (no "line" for .npy)."""
    texts = _prediction_texts(outputs, names)
    if lines is not None:
        line = '{{"row": {}, "line": {}, "prediction": {}}}\n'.format
        return "".join(map(line, rows.tolist(), lines.tolist(), texts))
    return "".join(map('{{"row": {}, "prediction": {}}}\n'.format, rows.tolist(), texts))


def _prediction_texts(outputs: dict[str, np.ndarray], names: list[str]) -> list[str]:
    """Each row's prediction as JSON text, as TF Serving gives one instance's answer."""
    only = outputs[names[0]] if len(names) == 1 else None
    if only is not None and only.dtype.kind == "f" and only.ndim == 2 and only.size:
        # The common case, a float vector per row: repr() of each float is its JSON, far cheaper than json.dumps.
        flat = list(map(repr, only.ravel().tolist()))
        k = only.shape[1]
        if k == 1:
            return ["[" + t + "]" for t in flat]
        return ["[" + ", ".join(flat[i : i + k]) + "]" for i in range(0, len(flat), k)]
    return [json.dumps(p, ensure_ascii=False) for p in per_instance(outputs, names)]


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


def _format_of(key: str) -> str | None:
    low = key.lower()
    if low.endswith(CSV_EXTENSIONS):
        return "csv"
    if low.endswith(JSONL_EXTENSIONS):
        return "jsonl"
    if low.endswith(NPY_EXTENSIONS):
        return "npy"
    return None


def _chunks(
    s3: Any, ref: ObjectRef, fmt: str, service: Service, settings: Settings, source: dict[str, Any]
) -> Iterator[Chunk]:
    n = settings.s3_chunk_rows
    if fmt == "npy":
        coercer = text_coercer(service.coercer)
        layout = npy_layout(aws.read_range(s3, ref.bucket, ref.key, 0, NPY_HEADER_BYTES - 1), coercer)
        if layout.rows == 0:
            return
        reader, resp = aws.open_object(s3, ref.bucket, ref.key, start=layout.offset)
        source["etag"] = _etag(resp.get("ETag", ""))
        try:
            yield from npy_chunks(reader, layout, coercer, n)
        finally:
            reader.close()
        return
    if fmt == "csv":
        check_csv_model(service.coercer)
    reader, resp = aws.open_object(s3, ref.bucket, ref.key)
    # Record what was actually read: the object may have been replaced since the event.
    source["etag"], source["size"] = _etag(resp.get("ETag", "")), resp.get("ContentLength")
    try:
        if fmt == "csv":
            yield from csv_chunks(reader, text_coercer(service.coercer), n)
        else:
            yield from jsonl_chunks(reader, service.coercer, n)
    finally:
        reader.close()

"""S3 "object created" -> predictions for every row of the file, streamed in chunks.

Triggers: the S3 notification event (`Records`, keys URL-encoded: '+' for a space, '%xx' for
the rest) and the same arriving through EventBridge (`detail-type: Object Created`, keys not
encoded). Only keys under `INPUT_PREFIX` are read; anything else is logged and ignored, and
`OUTPUT_PREFIX` lies outside it (settings refuse an overlap), so the function never triggers itself.

Input formats, by extension:
- `.csv`: a header row naming the features, in any order; cells are text, so numbers are parsed
  whatever `NUMERIC_STRINGS` says (that policy is for JSON bodies). Blank lines are skipped.
- `.jsonl` / `.ndjson`: one JSON object (named features) or array (training order) per line.
- `.npy`: a 2-D C-order array, one row per example in training column order. A numeric dtype is
  accepted only when every feature is numeric; a unicode/bytes dtype (`<U..`, `|S..`) holds any
  model's features as text, parsed like CSV cells. Object arrays need pickle to load, which can
  run code, so they are refused (`allow_pickle` is never enabled); so are structured arrays.

Outputs, for `s3://bucket/INPUT_PREFIX/a/b.csv` (in `OUTPUT_BUCKET`, default the source bucket):
- `OUTPUT_PREFIX/a/b.csv.jsonl`: one line per row that could be coerced, in input order:
  `{"row": 0, "line": 2, "prediction": [0.22]}` (`row` counts data rows from 0, `line` is the
  1-based line in the file where the row starts; `.npy` rows have no line);
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

import csv
import io
import json
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, BinaryIO
from urllib.parse import unquote_plus

import numpy as np

from handler.core.coerce import Coercer
from handler.core.service import Service
from handler.errors import FieldError
from handler.observability import logger, metrics
from handler.preprocessing import CategoricalFeature, NumericFeature
from handler.settings import Settings
from handler.sources import aws, csv_fast

PREDICTIONS_SUFFIX = ".jsonl"
ERRORS_SUFFIX = ".errors.jsonl"
MARKER_SUFFIX = ".done.json"
CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
NPY_EXTENSIONS = (".npy",)
# A .npy header is at most this long in practice (numpy itself warns above 10 kB).
_NPY_HEADER_READ = 64 * 1024


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


@dataclass
class RowError:
    """Every reason one input row could not be predicted."""

    row: int | None
    line: int | None
    errors: list[FieldError]

    def to_json(self) -> str:
        rec: dict[str, Any] = {"row": self.row}
        if self.line is not None:
            rec["line"] = self.line
        rec["errors"] = [{"feature": e.feature, "reason": e.reason} for e in self.errors]
        return json.dumps(rec, ensure_ascii=False)


@dataclass
class Chunk:
    """A slice of the file: the coerced good rows and the rows that failed, each with its position."""

    columns: dict[str, np.ndarray]
    rows: np.ndarray  # row number of each good row
    lines: np.ndarray | None  # line number of each good row (None for .npy)
    errors: list[RowError] = field(default_factory=list)


class FileRejected(Exception):
    """The file as a whole cannot be read; retrying will not help, so it is reported, not raised."""

    def __init__(self, reason: str, line: int | None = None, feature: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.feature = reason, line, feature


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
    n_good = len(chunk.rows)
    if n_good:
        outputs = service.predict_columns(chunk.columns)
        preds.write(prediction_lines(chunk.rows, chunk.lines, outputs).encode())
    if chunk.errors:
        errs.write("".join(e.to_json() + "\n" for e in chunk.errors).encode())
    counts["rows"] += n_good + len(chunk.errors)
    counts["predicted"] += n_good
    counts["errors"] += len(chunk.errors)


def prediction_lines(rows: np.ndarray, lines: np.ndarray | None, outputs: np.ndarray) -> str:
    """One JSON line per prediction: `{"row": 0, "line": 2, "prediction": [0.22]}` (no "line" for .npy)."""
    texts = _prediction_texts(outputs)
    if lines is not None:
        line = '{{"row": {}, "line": {}, "prediction": {}}}\n'.format
        return "".join(map(line, rows.tolist(), lines.tolist(), texts))
    return "".join(map('{{"row": {}, "prediction": {}}}\n'.format, rows.tolist(), texts))


def _prediction_texts(outputs: np.ndarray) -> list[str]:
    """Each row's prediction as JSON: the str() of its list of floats, as it was written row by row."""
    # str() of a list of finite floats is valid JSON (the repr of each float) and far cheaper than json.dumps.
    if not np.isfinite(outputs).all():
        return [json.dumps(p) for p in outputs.tolist()]
    if outputs.ndim != 2 or not outputs.size:
        return [str(p) for p in outputs.tolist()]
    flat = list(map(repr, outputs.ravel().tolist()))
    k = outputs.shape[1]
    if k == 1:
        return ["[" + t + "]" for t in flat]
    return ["[" + ", ".join(flat[i : i + k]) + "]" for i in range(0, len(flat), k)]


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
        yield from _npy_chunks(s3, ref, service, n, source)
        return
    reader, resp = aws.open_object(s3, ref.bucket, ref.key)
    # Record what was actually read: the object may have been replaced since the event.
    source["etag"], source["size"] = _etag(resp.get("ETag", "")), resp.get("ContentLength")
    try:
        if fmt == "csv":
            yield from csv_chunks(reader, _text_coercer(service), n)
        else:
            yield from jsonl_chunks(reader, service.coercer, n)
    finally:
        reader.close()


def _text_coercer(service: Service) -> Coercer:
    # Text cells are strings by nature: parse numbers from them whatever NUMERIC_STRINGS says.
    return Coercer(service.artifacts.preprocessor, replace(service.policy, numeric_strings="accept"))


# --- CSV -----------------------------------------------------------------------------------


def csv_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int, fast: bool = True) -> Iterator[Chunk]:
    """Stream a CSV with a header into chunks of at most `chunk_rows` data rows.

    Each chunk is the next `chunk_rows` records, as csv.reader counts them (blank lines included,
    then dropped). A chunk of plain lines is parsed with numpy (`csv_fast`); any other, or every
    one when `fast` is False, goes through csv.reader and `text_rows_chunk`, with the same result.
    """
    lines = csv_fast.LineSource(reader)
    records = csv.reader(lines)
    try:
        header = next(records, None)
        if header is None:
            return
        index = _csv_header(header, coercer)
        width = len(header)
        parser = csv_fast.BlockParser(coercer.pre, index, width)
        row0 = 0
        while True:
            last = lines.line_num
            if fast:
                block, n_lines = lines.take(chunk_rows)
                if not n_lines:
                    return
                parsed = parser.parse(block, last + 1)
                if parsed is not None:
                    chunk = _parsed_chunk(parsed, row0, coercer)
                    if len(parsed.lines):
                        yield chunk
                        row0 += len(parsed.lines)
                    continue
                lines.untake(block, n_lines)
            batch: list[list[str]] = []
            ends: list[int] = []
            add, end = batch.append, ends.append
            for rec in islice(records, chunk_rows):
                add(rec)
                end(lines.line_num)  # a quoted field may span lines: the reader knows where each row ends
            if not batch:
                return
            starts = [last + 1, *(e + 1 for e in ends[:-1])]
            if min(map(len, batch)) <= 1:
                # Blank (or whitespace-only) lines are not rows.
                keep = [i for i, r in enumerate(batch) if len(r) > 1 or (r and (width == 1 or r[0].strip()))]
                batch, starts = [batch[i] for i in keep], [starts[i] for i in keep]
            if batch:
                yield text_rows_chunk(batch, starts, row0, index, width, coercer)
                row0 += len(batch)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file is not valid UTF-8 ({exc.reason} at byte {exc.start} of a block)") from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV: {exc}", line=lines.line_num) from None


def _parsed_chunk(parsed: csv_fast.ParsedBlock, row0: int, coercer: Coercer) -> Chunk:
    """A block csv_fast parsed -> a Chunk; its suspect rows are judged by the coercer."""
    keep, by_row = _judge_suspects(
        parsed.columns, parsed.suspect, lambda where: [parsed.raw_row(p) for p in where], coercer
    )
    kept = np.flatnonzero(keep)
    lines = parsed.lines
    return Chunk(
        columns={name: col[keep] for name, col in parsed.columns.items()},
        rows=row0 + kept,
        lines=lines[kept],
        errors=[RowError(row0 + i, int(lines[i]), errs) for i, errs in sorted(by_row.items())],
    )


def _csv_header(header: list[str], coercer: Coercer) -> dict[str, int]:
    names = [h.strip() for h in header]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise FileRejected(f"the header repeats column(s) {', '.join(dupes)}", line=1)
    missing = [f for f in coercer.names if f not in names]
    if missing:
        raise FileRejected(
            f"the header lacks feature column(s) {', '.join(missing)}; it must name every feature: "
            f"{', '.join(coercer.names)}",
            line=1,
        )
    unknown = [h for h in names if h not in coercer.names]
    if unknown and coercer.policy.unknown_features == "reject":
        raise FileRejected(
            f"the header has column(s) that are not features of this model: {', '.join(unknown)} "
            f"(remove them, or set UNKNOWN_FEATURES=ignore)",
            line=1,
        )
    return {f: names.index(f) for f in coercer.names}


def text_rows_chunk(
    records: list[list[str]] | np.ndarray,
    lines: list[int] | None,
    row0: int,
    index: dict[str, int],
    width: int,
    coercer: Coercer,
) -> Chunk:
    """Text rows -> a Chunk: vectorised parsing for the plain rows, the coercer for anything unusual.

    Every row that numpy cannot take as-is (a cell that is not a number, NaN/Inf, an unknown
    category under a strict policy) goes through `Coercer.coerce_rows`, which either accepts it
    (e.g. imputes) or names every problem; the fast path only ever accepts rows the coercer would.
    """
    n = len(records)
    errors: dict[int, RowError] = {}
    lengths = [len(r) for r in records] if isinstance(records, list) else [width] * n
    pos_ok = list(range(n)) if lengths.count(width) == n else [i for i in range(n) if lengths[i] == width]
    if len(pos_ok) < n:
        for i in range(n):
            if len(records[i]) != width:
                reason = f"has {len(records[i])} values but the header has {width} columns"
                errors[i] = RowError(row0 + i, lines[i] if lines else None, [FieldError(None, None, reason)])
        records = [records[i] for i in pos_ok]
    pos = np.asarray(pos_ok, dtype=np.int64)
    m = len(pos)
    columns: dict[str, np.ndarray] = {}
    suspect = np.zeros(m, dtype=bool)
    if m:
        transposed = list(zip(*records, strict=True)) if isinstance(records, list) else list(np.asarray(records).T)
        for f in coercer.pre.features:
            raw = transposed[index[f.name]]
            if isinstance(f, NumericFeature):
                values, bad = _parse_floats(raw)
                suspect |= bad
                columns[f.name] = values
            else:
                cats = np.array(raw.tolist() if isinstance(raw, np.ndarray) else raw, dtype=object)
                if isinstance(f, CategoricalFeature) and f.oov == "error":
                    vocabulary = set(f.vocabulary)
                    suspect |= np.fromiter((v not in vocabulary for v in cats.tolist()), dtype=bool, count=m)
                columns[f.name] = cats
    rows_of = records
    keep, by_row = _judge_suspects(
        columns, suspect, lambda where: [{f: str(rows_of[p][index[f]]) for f in coercer.names} for p in where], coercer
    )
    for k, errs in by_row.items():
        i = int(pos[k])
        errors[i] = RowError(row0 + i, lines[i] if lines else None, errs)
    kept = pos[keep]
    return Chunk(
        columns={name: col[keep] for name, col in columns.items()},
        rows=row0 + kept,
        lines=np.asarray(lines, dtype=np.int64)[kept] if lines else None,
        errors=[errors[i] for i in sorted(errors)],
    )


def _judge_suspects(
    columns: dict[str, np.ndarray],
    suspect: np.ndarray,
    raw_rows: Callable[[list[int]], list[dict[str, str]]],
    coercer: Coercer,
) -> tuple[np.ndarray, dict[int, list[FieldError]]]:
    """Send the suspect rows to the coercer: keep the ones it accepts (with its values), and every reason for the rest.

    Returns the mask of rows to keep and, by row position, the errors of the rest.
    """
    keep: np.ndarray = ~suspect
    by_row: dict[int, list[FieldError]] = {}
    if suspect.any():
        where = np.flatnonzero(suspect)
        good_cols, field_errors, good = coercer.coerce_rows(raw_rows(where.tolist()))
        if good:
            accepted = where[good]
            keep[accepted] = True
            for name, col in good_cols.items():
                columns[name][accepted] = col
        for e in field_errors:
            by_row.setdefault(int(where[e.instance or 0]), []).append(e)
    return keep, by_row


def _parse_floats(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Text cells -> float64 values and a mask of cells that are not a finite number."""
    try:
        # numpy parses a tuple of str in C (about 2M cells/s here); a unicode array via astype.
        values = raw.astype(np.float64) if isinstance(raw, np.ndarray) else np.array(raw, dtype=np.float64)
    except ValueError:
        # Some cell is not a number: parse one by one to find which (rare, so per-cell is fine).
        values = np.empty(len(raw), dtype=np.float64)
        for i, cell in enumerate(raw):
            try:
                values[i] = float(cell)
            except ValueError:
                values[i] = np.nan
    return values, ~np.isfinite(values)


# --- JSON Lines ----------------------------------------------------------------------------


def jsonl_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """Stream JSON Lines (an object or an ordered array per line) into chunks of rows."""
    text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="\n")
    batch: list[Any] = []
    lines: list[int] = []
    bad: dict[int, RowError] = {}  # position in batch -> a line that is not JSON
    row0 = 0
    try:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except ValueError as exc:
                bad[len(batch)] = RowError(
                    row0 + len(batch), number, [FieldError(None, None, f"not valid JSON: {exc}")]
                )
                batch.append(None)
            lines.append(number)
            if len(batch) >= chunk_rows:
                yield _json_chunk(batch, lines, bad, row0, coercer)
                row0 += len(batch)
                batch, lines, bad = [], [], {}
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file is not valid UTF-8 ({exc.reason})") from None
    if batch:
        yield _json_chunk(batch, lines, bad, row0, coercer)


def _json_chunk(batch: list[Any], lines: list[int], bad: dict[int, RowError], row0: int, coercer: Coercer) -> Chunk:
    parsed = [i for i in range(len(batch)) if i not in bad]
    cols, field_errors, good = coercer.coerce_rows([batch[i] for i in parsed])
    errors = dict(bad)
    for e in field_errors:
        i = parsed[e.instance or 0]
        errors.setdefault(i, RowError(row0 + i, lines[i], [])).errors.append(e)
    kept = np.asarray([parsed[g] for g in good], dtype=np.int64)
    return Chunk(
        columns=cols,
        rows=row0 + kept,
        lines=np.asarray(lines, dtype=np.int64)[kept],
        errors=[errors[i] for i in sorted(errors)],
    )


# --- .npy ----------------------------------------------------------------------------------


def _npy_chunks(s3: Any, ref: ObjectRef, service: Service, chunk_rows: int, source: dict[str, Any]) -> Iterator[Chunk]:
    head = aws.read_range(s3, ref.bucket, ref.key, 0, _NPY_HEADER_READ - 1)
    shape, dtype, offset = npy_header(head, service.coercer)
    n_rows, width = shape
    row_bytes = dtype.itemsize * width
    coercer = _text_coercer(service)
    index = {name: j for j, name in enumerate(coercer.names)}
    if n_rows == 0:
        return
    reader, resp = aws.open_object(s3, ref.bucket, ref.key, start=offset)
    source["etag"] = _etag(resp.get("ETag", ""))
    try:
        row0 = 0
        while row0 < n_rows:
            want = min(chunk_rows, n_rows - row0)
            data = reader.read(want * row_bytes)
            if len(data) != want * row_bytes:
                raise FileRejected(f"the .npy file is truncated: its header promises {n_rows} rows")
            block = np.frombuffer(data, dtype=dtype).reshape(want, width)
            if dtype.kind in "US":
                text = block.astype(str) if dtype.kind == "S" else block
                yield text_rows_chunk(text, None, row0, index, width, coercer)
            else:
                yield _numeric_chunk(block, row0, coercer)
            row0 += want
    finally:
        reader.close()


def npy_header(head: bytes, coercer: Coercer) -> tuple[tuple[int, int], np.dtype, int]:
    """Parse and check a .npy header: (shape, dtype, data offset), or FileRejected saying why not."""
    fh = io.BytesIO(head)
    try:
        major, _ = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh, max_header_size=_NPY_HEADER_READ)
    except (ValueError, EOFError) as exc:
        raise FileRejected(f"not a readable .npy file: {exc}") from None
    width = len(coercer.names)
    if dtype.hasobject or dtype.names is not None:
        raise FileRejected(
            f"the .npy array has dtype {dtype}, which needs pickle to load; pickle can run code, so it "
            f"is refused: save a numeric array (all-numeric models) or a unicode one (np.array(rows, dtype=str))"
        )
    if len(shape) != 2 or shape[1] != width:
        raise FileRejected(
            f"the .npy array has shape {shape}; it must be 2-D with {width} columns in this order: "
            f"{', '.join(coercer.names)}"
        )
    if fortran and shape[0] > 1:
        raise FileRejected("the .npy array is in Fortran order; save a C-order array (np.ascontiguousarray)")
    if dtype.kind not in "biufUS":
        raise FileRejected(f"the .npy array has dtype {dtype}; use a numeric or a unicode dtype")
    categorical = [f.name for f in coercer.pre.features if isinstance(f, CategoricalFeature)]
    if dtype.kind in "biuf" and categorical:
        raise FileRejected(
            f"the .npy array is numeric ({dtype}) but the model has categorical feature(s) "
            f"{', '.join(categorical)}: save it with a unicode dtype (np.array(rows, dtype=str)), or use CSV"
        )
    return (int(shape[0]), int(shape[1])), dtype, fh.tell()


def _numeric_chunk(block: np.ndarray, row0: int, coercer: Coercer) -> Chunk:
    values = block.astype(np.float64)
    columns = {name: values[:, j].copy() for j, name in enumerate(coercer.names)}
    suspect = np.logical_not(np.isfinite(values).all(axis=1))
    keep: np.ndarray = ~suspect
    errors: list[RowError] = []
    if suspect.any():
        where = np.flatnonzero(suspect)
        rows = [values[p].tolist() for p in where.tolist()]
        cols, field_errors, good = coercer.coerce_rows(rows)
        keep[where[good]] = True
        for name, col in cols.items():
            columns[name][where[good]] = col
        by_row: dict[int, list[FieldError]] = {}
        for e in field_errors:
            by_row.setdefault(int(where[e.instance or 0]), []).append(e)
        errors = [RowError(row0 + i, None, errs) for i, errs in sorted(by_row.items())]
    return Chunk(
        columns={name: col[keep] for name, col in columns.items()},
        rows=row0 + np.flatnonzero(keep),
        lines=None,
        errors=errors,
    )

"""Files of served requests -> batches of coerced features (and outputs, when the file has them).

A source is a local file or every object under an S3 prefix. The format comes from the name:
- `.csv` and `.parquet`: read by the file formats' own readers (`handler/formats/`), the S3 trigger's,
  streamed: a Parquet file a span of row groups at a time, through ranged reads on S3;
- `.jsonl` / `.ndjson`: one JSON object a line: a row as `instances` takes it, a v1 body
  (`{"instances": [...]}`), or a data capture record (`{"instance": ..., "outputs": ...}`). This one
  is read here: a capture record carries the answers beside the row, which no request file has.

Rows are coerced by the server's own rules; a row that fails is counted with its reason, not read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from handler.core.coerce import Coercer
from handler.formats import csv
from handler.formats.base import Chunk, FileRejected

CHUNK_ROWS = 8192
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class DriftInputError(Exception):
    """A source that cannot be read: the message names it and says why."""


@dataclass
class Batch:
    """Coerced good rows of one chunk, the outputs recorded with them (capture records), and the rejected rows."""

    columns: dict[str, np.ndarray]
    rows: int
    outputs: dict[str, np.ndarray] | None = None
    rejected: list[str] = field(default_factory=list)  # one reason per rejected row


@dataclass(frozen=True)
class Source:
    """One file: a local path, or an S3 object; read as a file format reads an object (`formats.base.ObjectSource`)."""

    name: str
    fmt: str
    path: Path | None = None
    bucket: str = ""
    key: str = ""
    s3: Any = field(default=None, compare=False)

    def stream(self, start: int = 0) -> BinaryIO:
        if self.path is not None:
            try:
                handle = self.path.open("rb")
            except OSError as exc:
                raise DriftInputError(f"{self.name}: cannot be read ({exc.strerror or exc})") from None
            handle.seek(start)
            return handle
        from handler.s3_objects import S3Object  # lazily: a local file needs no boto3

        try:
            return S3Object(self.s3, self.bucket, self.key).stream(start)
        except Exception as exc:
            raise DriftInputError(f"{self.name}: cannot be read from S3 ({_aws_reason(exc)})") from None

    def seekable(self) -> BinaryIO:
        if self.path is not None:
            return self.stream()
        from handler.s3_objects import S3Object

        try:
            return S3Object(self.s3, self.bucket, self.key).seekable()
        except Exception as exc:
            raise DriftInputError(f"{self.name}: cannot be read from S3 ({_aws_reason(exc)})") from None

    def head(self, size: int) -> bytes:
        with self.stream() as reader:
            return reader.read(size)


def _format(name: str) -> str:
    fmt = next((f for ext, f in FORMATS.items() if name.lower().endswith(ext)), None)
    if fmt is None:
        raise DriftInputError(f"{name}: unknown format: name files .csv, .jsonl, .ndjson or .parquet")
    return fmt


def _aws_reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}" if error else f"{type(exc).__name__}: {exc}"


def sources(target: str, s3: Any = None) -> list[Source]:
    """The files to read: the one file named, or every object under an s3:// prefix (in key order)."""
    if not target.startswith("s3://"):
        path = Path(target)
        if not path.is_file():
            raise DriftInputError(f"{target}: no such file")
        return [Source(target, _format(target), path=path)]
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    if not bucket:
        raise DriftInputError(f"{target}: an S3 URI needs a bucket: s3://bucket/prefix/")
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    except Exception as exc:
        raise DriftInputError(f"{target}: cannot list the prefix ({_aws_reason(exc)})") from None
    if not keys:
        raise DriftInputError(f"{target}: no object under this prefix")
    return [Source(f"s3://{bucket}/{k}", _format(k), bucket=bucket, key=k, s3=s3) for k in sorted(keys)]


def read(source: Source, coercer: Coercer) -> Iterator[Batch]:
    """Batches of one source; DriftInputError if the file as a whole cannot be read."""
    try:
        if source.fmt == "csv":
            yield from map(_batch, csv.FORMAT.read(source, coercer, CHUNK_ROWS))
        elif source.fmt == "jsonl":
            with source.stream() as reader:
                yield from _jsonl(reader, coercer)
        else:
            yield from _parquet(source, coercer)
    except FileRejected as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise DriftInputError(f"{source.name}{where}: {exc.reason}") from None
    except UnicodeDecodeError:
        raise DriftInputError(f"{source.name}: not UTF-8 text") from None


def _batch(chunk: Chunk) -> Batch:
    return Batch(chunk.columns, len(chunk.rows), None, [_reason(e.errors) for e in chunk.errors])


def _reason(errors: list[Any]) -> str:
    return "; ".join(f"{e.feature}: {e.reason}" if e.feature else e.reason for e in errors)


def _jsonl(reader: BinaryIO, coercer: Coercer) -> Iterator[Batch]:
    rows: list[Any] = []
    outputs: list[Mapping[str, Any] | None] = []
    bad: list[str] = []
    for number, raw in enumerate(io.TextIOWrapper(reader, encoding="utf-8-sig"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            bad.append(f"line {number} is not JSON")
            continue
        if isinstance(record, dict) and "instance" in record:  # a data capture record
            rows.append(record["instance"])
            outputs.append(record.get("outputs") if isinstance(record.get("outputs"), dict) else None)
        elif isinstance(record, dict) and isinstance(record.get("instances"), list):  # a v1 body
            rows += record["instances"]
            outputs += [None] * len(record["instances"])
        else:
            rows.append(record)
            outputs.append(None)
        if len(rows) >= CHUNK_ROWS:
            yield _rows_batch(rows, outputs, bad, coercer)
            rows, outputs, bad = [], [], []
    if rows or bad:
        yield _rows_batch(rows, outputs, bad, coercer)


def _rows_batch(rows: list[Any], outputs: list[Mapping[str, Any] | None], bad: list[str], coercer: Coercer) -> Batch:
    if not rows:
        return Batch({}, 0, None, bad)
    columns, errors, kept = coercer.coerce_rows(rows)
    by_row: dict[int | None, list[Any]] = {}
    for e in errors:
        by_row.setdefault(e.instance, []).append(e)
    rejected = bad + [_reason(errs) for errs in by_row.values()]
    answers = [outputs[i] for i in kept.tolist()]
    recorded = None
    if answers and all(a is not None for a in answers):
        names = set.intersection(*(set(a) for a in answers if a is not None))
        recorded = {n: np.asarray([a[n] for a in answers if a is not None], dtype=np.float64) for n in sorted(names)}
    return Batch(columns, len(kept), recorded, rejected)


def _parquet(source: Source, coercer: Coercer) -> Iterator[Batch]:
    """A span of row groups at a time (the S3 trigger's reader): memory follows the span, not the file."""
    from handler.formats.parquet import open_parquet, parquet_chunks

    try:
        parquet = open_parquet(source.seekable(), coercer)
    except FileRejected as exc:
        raise DriftInputError(f"{source.name}: not a Parquet file ({exc.reason[:200]})") from None
    names = parquet.schema_arrow.names
    missing = [n for n in coercer.names if n not in names]
    if missing:
        raise DriftInputError(
            f"{source.name}: no column for feature(s) {', '.join(missing)} (columns: {', '.join(names)})"
        )
    yield from map(_batch, parquet_chunks(parquet, coercer, CHUNK_ROWS))

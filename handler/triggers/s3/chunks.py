"""An object's rows through the model, chunk by chunk, into its outputs: the loop of the S3 job.

Reading and parsing the next chunk runs ahead on a thread, writing the last one's answers behind on
another (`pipeline.py`); a chunk's rows the model cannot answer (an input that overflows its dtype, a
NaN answer) join the errors. A job given a deadline stops between two chunks when it nears it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from handler.core.inference_ids import RowIds
from handler.core.service import Service
from handler.core.signature import TensorSpec
from handler.deadline import Deadline
from handler.formats.base import Chunk, Format, PredictionWriter, RowError, row_order
from handler.observability import count_non_finite
from handler.s3_objects import S3Object
from handler.settings import Settings
from handler.triggers.s3.checkpoint import Checkpoint
from handler.triggers.s3.pipeline import WriteBehind, prefetched

# A chunk's coerced input, when S3_CHUNK_ROWS does not say: churn ~32k rows, 28x28 images ~10k, 224x224x3 floats 64.
CHUNK_BYTES = 8 << 20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 64, 65_536


def predict_all(
    obj: S3Object,
    fmt: Format,
    service: Service,
    settings: Settings,
    preds: Any,
    errs: Any,
    counts: dict[str, int],
    resume: Checkpoint | None = None,
    deadline: Deadline | None = None,
) -> tuple[int, int] | None:
    """Every chunk through the model into the outputs; (next row, preamble) if the deadline stopped it first.

    A resumed job reads the object again from the start and skips the chunks before its checkpoint: the
    chunk boundaries stay those of one long run, and so do the outputs' bytes. Its writer writes its
    preamble (a CSV header) again, which is dropped: the first invocation uploaded it.
    """
    start = resume.next_row if resume is not None else 0
    before = preds.bytes_written
    sink = _Dropping(preds, resume.preamble) if resume is not None else preds
    writer = fmt.writer(sink, service.artifacts.signature)
    preamble = resume.preamble if resume is not None else preds.bytes_written - before
    try:
        with contextlib.closing(prefetched(_chunks(obj, fmt, service, settings))) as chunks, WriteBehind() as behind:
            for chunk in chunks:
                first = _first_row(chunk)
                if first < start:
                    continue  # done in an earlier invocation
                if deadline is not None and deadline.time_to_stop():
                    return first, preamble
                began = time.perf_counter()
                write_chunk(chunk, service, writer, errs, counts, behind, obj.key)
                if deadline is not None:
                    deadline.done(time.perf_counter() - began)
        writer.close()
        return None
    finally:
        writer.discard()


def _first_row(chunk: Chunk) -> int:
    rows = [int(chunk.rows[0])] if len(chunk.rows) else []
    rows += [e.row for e in chunk.errors[:1] if e.row is not None]
    return min(rows) if rows else 0


class _Dropping:
    """A sink that drops the first `n` bytes written to it (what a resumed writer writes again)."""

    def __init__(self, sink: Any, n: int) -> None:
        self._sink, self._left = sink, n

    def write(self, data: bytes) -> None:
        if self._left:
            cut = min(self._left, len(data))
            data, self._left = data[cut:], self._left - cut
        if data:
            self._sink.write(data)


def write_chunk(
    chunk: Chunk,
    service: Service,
    writer: PredictionWriter,
    errs: Any,
    counts: dict,
    behind: WriteBehind,
    key: str | None = None,
) -> None:
    """One chunk through the model; its rows' inference ids are `<key>/<row number>`."""
    errors = list(chunk.errors)
    n_good = len(chunk.rows)
    if n_good:
        ids = RowIds(key, chunk.rows) if key is not None else None
        prediction = service.run(chunk.columns, coded=chunk.coded, ids=ids)
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


def _chunks(obj: S3Object, fmt: Format, service: Service, settings: Settings) -> Iterator[Chunk]:
    yield from fmt.read(obj, service.coercer, chunk_rows(service.coercer.features, settings.s3_chunk_rows))

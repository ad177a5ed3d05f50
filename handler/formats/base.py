"""What every file format shares: the chunks its reader yields, the errors of its rows, and what its writer is.

A reader (one module per format: `csv`, `parquet`, `jsonl`, `npy`) turns an object into `Chunk`s: the good rows,
coerced by the core's `Coercer` (the same rules as a request), with their row (and line) numbers, and a
`RowError` for every row that could not be. A file that cannot be read at all raises `FileRejected`, which is
reported in the errors object, not retried. A writer (`PredictionWriter`) turns each chunk's answers into bytes
for a `Sink`. `registry.py` names the formats; formats know neither AWS nor Keras.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Protocol

import numpy as np

from handler.core.coerce import Coercer
from handler.core.signature import Signature
from handler.core.values import Coded
from handler.errors import FieldError


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
    coded: dict[str, Coded] = field(default_factory=dict)  # text columns also as (codes, levels), for preprocessing


class FileRejected(Exception):
    """The file as a whole cannot be read; retrying will not help, so it is reported, not raised."""

    def __init__(self, reason: str, line: int | None = None, feature: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.feature = reason, line, feature


def text_coercer(coercer: Coercer) -> Coercer:
    """Text cells are strings by nature: the same coercer, parsing numbers from them whatever NUMERIC_STRINGS says."""
    return Coercer(coercer.signature, replace(coercer.policy, numeric_strings="accept"))


def coerced_chunk(
    values: Mapping[str, Sequence[Any]],
    rows: np.ndarray,
    lines: np.ndarray | None,
    coercer: Coercer,
    errors: Sequence[RowError] = (),
) -> Chunk:
    """Per feature, one value per row -> a Chunk: rows the coercer refuses join `errors`, in row order."""
    if not len(rows):  # every row of the chunk was refused already (a wrong field count, say)
        return Chunk({}, rows, lines, list(errors))
    columns, field_errors, good = coercer.coerce_values(values, len(rows))
    by_row: dict[int, RowError] = {}
    for e in field_errors:
        i = e.instance or 0
        by_row.setdefault(i, RowError(int(rows[i]), int(lines[i]) if lines is not None else None, [])).errors.append(e)
    merged = sorted([*errors, *by_row.values()], key=row_order)
    return Chunk(columns, rows[good], lines[good] if lines is not None else None, merged)


def split_chunk(chunk: Chunk, size: int) -> Iterator[Chunk]:
    """A chunk in pieces of at most `size` good rows; each refused row goes with the piece whose rows surround it."""
    n = len(chunk.rows)
    if n <= size:
        yield chunk
        return
    errors = sorted(chunk.errors, key=row_order)
    taken = 0
    for start in range(0, n, size):
        end = min(start + size, n)
        upto = len(errors) if end == n else taken
        while (
            end < n and upto < len(errors) and errors[upto].row is not None and errors[upto].row < chunk.rows[end - 1]
        ):
            upto += 1
        yield Chunk(
            {name: col[start:end] for name, col in chunk.columns.items()},
            chunk.rows[start:end],
            None if chunk.lines is None else chunk.lines[start:end],
            errors[taken:upto],
            {name: (codes[start:end], levels) for name, (codes, levels) in chunk.coded.items()},
        )
        taken = upto


class Sink(Protocol):
    """Where bytes go: `aws.MultipartWriter` (or a file, in tests)."""

    def write(self, data: bytes) -> None: ...


class PredictionWriter(Protocol):
    """Answers of one chunk at a time, then `close()` to finish the format (before the sink completes)."""

    content_type: str
    suffix: str

    def write(self, rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None:
        """After a failure: drop what is buffered, write nothing more (a no-op once closed)."""


class ObjectSource(Protocol):
    """The object a reader reads: on S3 one version of one object (every read pinned to it), or a local file."""

    def stream(self, start: int = 0) -> BinaryIO:
        """Its bytes from `start`, read in order."""
        ...

    def seekable(self) -> BinaryIO:
        """A file object with random access (Parquet reads its footer first, then column ranges)."""
        ...

    def head(self, size: int) -> bytes:
        """Its first `size` bytes (fewer if it is shorter)."""
        ...


@dataclass(frozen=True)
class Format:
    """One file format: how its rows are read and how its answers are written.

    `read(source, coercer, chunk_rows)` yields chunks of at most `chunk_rows` good rows; `writer(sink, signature)`
    writes the answers: the input's own format for CSV and Parquet, JSON Lines for the others.
    """

    name: str
    extensions: tuple[str, ...]
    read: Callable[[ObjectSource, Coercer, int], Iterator[Chunk]]
    writer: Callable[[Sink, Signature], PredictionWriter]
    suffix: str  # of the predictions object
    content_type: str  # of the predictions object


def row_order(error: RowError) -> tuple[bool, int]:
    """The sort key of row errors: by row, a file-level error (no row) last."""
    return (error.row is None, error.row or 0)

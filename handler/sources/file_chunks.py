"""Rows of an input file -> chunks of coerced feature batches, with every bad row and its reasons.

One module per way of reading: JSON Lines and `.npy` here, CSV in `csv_chunks.py`, Parquet in
`parquet_chunks.py` (both on pyarrow, through `arrow_columns.py`). Each yields
`Chunk`s: the good rows, coerced by the core's `Coercer` (the same rules as a request), with
their row (and line) numbers, and a `RowError` for every row that could not be. A file that
cannot be read at all raises `FileRejected`, which is reported in the errors object, not retried.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec
from handler.core.values import Coded
from handler.errors import FieldError

# A .npy header is at most this long in practice (numpy itself warns above 10 kB).
NPY_HEADER_BYTES = 64 * 1024


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
    merged = sorted([*errors, *by_row.values()], key=lambda r: (r.row is None, r.row or 0))
    return Chunk(columns, rows[good], lines[good] if lines is not None else None, merged)


def split_chunk(chunk: Chunk, size: int) -> Iterator[Chunk]:
    """A chunk in pieces of at most `size` good rows; each refused row goes with the piece whose rows surround it."""
    n = len(chunk.rows)
    if n <= size:
        yield chunk
        return
    errors = sorted(chunk.errors, key=lambda e: (e.row is None, e.row or 0))
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


# --- JSON Lines ----------------------------------------------------------------------------


def jsonl_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """Stream JSON Lines (one request row per line: an object, a value, or an ordered array) into chunks."""
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
    kept = np.asarray([parsed[g] for g in good.tolist()], dtype=np.int64)
    return Chunk(
        columns=cols,
        rows=row0 + kept,
        lines=np.asarray(lines, dtype=np.int64)[kept],
        errors=[errors[i] for i in sorted(errors)],
    )


# --- .npy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpyLayout:
    """How a .npy file's rows map to features: one array input ("tensor"), or a column per feature."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    offset: int
    tensor: TensorSpec | None

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * np.prod(self.shape[1:], dtype=np.int64))


def npy_layout(head: bytes, coercer: Coercer) -> NpyLayout:
    """Parse and check a .npy header against the signature, or FileRejected saying why not.

    A model with one array input takes an array [n, *its shape]; a tabular model (scalar features)
    takes [n, features] in feature order, numeric or (for string features) unicode.
    """
    fh = io.BytesIO(head)
    try:
        major, _ = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh, max_header_size=NPY_HEADER_BYTES)
    except (ValueError, EOFError) as exc:
        raise FileRejected(f"not a readable .npy file: {exc}") from None
    if dtype.hasobject or dtype.names is not None:
        raise FileRejected(
            f"the .npy array has dtype {dtype}, which needs pickle to load; pickle can run code, so it "
            f"is refused: save a numeric array, or a unicode one (np.array(rows, dtype=str))"
        )
    if fortran and shape and shape[0] > 1:
        raise FileRejected("the .npy array is in Fortran order; save a C-order array (np.ascontiguousarray)")
    if dtype.kind not in "biufUS":
        raise FileRejected(f"the .npy array has dtype {dtype}; use a numeric or a unicode dtype")
    features = coercer.features
    single = features[0] if len(features) == 1 else None
    if single is not None and single.rank > 0:
        want = ["n", *("any" if d is None else str(d) for d in single.shape)]
        fits = len(shape) == single.rank + 1 and all(
            d is None or d == s for d, s in zip(single.shape, shape[1:], strict=True)
        )
        if not fits:
            raise FileRejected(
                f"the .npy array has shape {list(shape)}; this model takes [{', '.join(want)}] ({single.name})"
            )
        return NpyLayout(tuple(shape), dtype, fh.tell(), single)
    if not coercer.signature.scalar_features:
        raise FileRejected(
            f"a .npy file holds one array, but this model takes {len(features)} inputs "
            f"({', '.join(coercer.names)}): send JSON Lines, one object per example"
        )
    width = len(features)
    if len(shape) != 2 or shape[1] != width:
        raise FileRejected(
            f"the .npy array has shape {list(shape)}; it must be 2-D with {width} columns in this order: "
            f"{', '.join(coercer.names)}"
        )
    text = [f.name for f in features if f.kind == "string"]
    if dtype.kind in "biuf" and text:
        raise FileRejected(
            f"the .npy array is numeric ({dtype}) but the model has string feature(s) {', '.join(text)}: save it "
            f"with a unicode dtype (np.array(rows, dtype=str)), or use CSV"
        )
    return NpyLayout((int(shape[0]), width), dtype, fh.tell(), None)


def npy_chunks(reader: BinaryIO, layout: NpyLayout, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """The array's rows in chunks, read straight from the stream (the file is never held whole)."""
    row0 = 0
    while row0 < layout.rows:
        want = min(chunk_rows, layout.rows - row0)
        data = reader.read(want * layout.row_bytes)
        if len(data) != want * layout.row_bytes:
            raise FileRejected(f"the .npy file is truncated: its header promises {layout.rows} rows")
        block = np.frombuffer(data, dtype=layout.dtype).reshape(want, *layout.shape[1:])
        if block.dtype.kind == "S":
            block = block.astype(str)
        rows = row0 + np.arange(want, dtype=np.int64)
        if layout.tensor is not None:
            values: dict[str, Any] = {layout.tensor.name: block}
        else:
            values = {name: block[:, j] for j, name in enumerate(coercer.names)}
        yield coerced_chunk(values, rows, None, coercer)
        row0 += want

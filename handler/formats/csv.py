"""CSV rows -> chunks of coerced feature batches, streamed by pyarrow (the file is never held whole).

A CSV needs a header naming every feature (any order) and suits models whose features are all
scalars, or of shape [1] (tabular models). The header is read here, with the standard library, so a missing,
repeated or unknown column rejects the file by name before any row is parsed. The rows are then
cut into blocks where pyarrow's streaming reader would cut them (`formats/csv_blocks.py`), and the
blocks are parsed by pyarrow on `PARSE_THREADS` threads at once, every cell read as text, and
handed on in file order; `formats/arrow.py` casts the numbers with `pyarrow.compute` and judges
what does not cast with the coercer, cell by cell. Cells are text by nature, so numbers are parsed
from them whatever NUMERIC_STRINGS says.

Where each row is in the file: `row` counts the records after the header from 0, in file order,
good and refused alike; blank lines (and lines of spaces) are not rows, and a quoted value with a
line break is still one row. A record with the wrong number of fields is refused with its row
number too: pyarrow numbers the records it refuses (when it parses on one thread, as each block
is parsed), and that number, counted from the block's first record, places the record among the
rows, and the rows of the blocks before place the block. No `line` is reported: pyarrow's
number counts records, skipping blank lines, so it is not a line number, and pyarrow says
nothing of where a good record starts.
"""

from __future__ import annotations

import csv
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from handler.core.answer import jsonable
from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec
from handler.errors import FieldError
from handler.formats.arrow import ArrowPredictions, ToSink, batch_chunk
from handler.formats.base import (
    Chunk,
    FileRejected,
    Format,
    ObjectSource,
    RowError,
    Sink,
    row_order,
    split_chunk,
    text_coercer,
)
from handler.formats.csv_blocks import blocks
from handler.formats.long_rows import MAX_ROW_BYTES, TOO_LONG, LongRowsCut

# Bytes pyarrow parses at a time. A line longer than this is cut out before (a row error of its own,
# formats/long_rows.py); a record of many lines (quoted line breaks) much longer cannot be read: the file is
# rejected, saying so.
BLOCK_BYTES = 4 << 20
# Blocks parsed at once. Two cores (Lambda gives two from 1,769 MB on, at 1 vCPU of time up to 1,769 MB, 1.7 at 3,008):
# with spare time on the second core, the file is parsed while the model and the writers run; at one vCPU the two
# threads only share it. At most one more block is read ahead of them.
PARSE_THREADS = max(1, min(2, os.cpu_count() or 1))
# A header longer than this is not a header.
MAX_HEADER_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


def check_csv_model(coercer: Coercer) -> None:
    """CSV carries one value per cell: refuse, with what to send instead, a model with array inputs."""
    arrays = [f"{f.name} ({f.describe()})" for f in coercer.features if f.rank > 0 and tuple(f.shape) != (1,)]
    if arrays:
        raise FileRejected(
            f"a CSV holds one value per cell, but this model takes array input(s) {', '.join(arrays)}: send JSON "
            f"Lines (one request row per line){' or .npy' if len(coercer.features) == 1 else ''}"
        )


def csv_chunks(
    reader: BinaryIO, coercer: Coercer, chunk_rows: int, block_bytes: int = BLOCK_BYTES, threads: int = PARSE_THREADS
) -> Iterator[Chunk]:
    """Stream a CSV with a header into chunks of at most `chunk_rows` parsed rows (and the refused records among them).

    `reader` is read from its current position: the header first, then the rows, a block at a time.
    """
    header = _read_header(reader)
    if header is None:
        return
    names = _check_header(header, coercer)
    longest = min(MAX_ROW_BYTES, block_bytes)  # pyarrow parses a record over two blocks at most
    convert = pacsv.ConvertOptions(
        column_types={name: _text_type(name, coercer) for name in names},
        include_columns=list(coercer.names),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = partial(_parse_block, names=names, coercer=coercer, longest=longest, convert=convert)
    offset = 0  # rows in the blocks before
    refused: list[RowError] = []  # records of the wrong width not yet handed on, in row order
    try:
        for block in _in_order(blocks(LongRowsCut(reader, len(names), longest), block_bytes), parse, threads):
            refused += _moved(block.refused, offset)
            if block.chunk is not None:
                # A refused record goes with the good rows around it: with this block's if it comes before its last.
                last = block.last + offset
                due = [e for e in refused if int(e.row or 0) < last]
                refused = refused[len(due) :]
                chunk = block.chunk
                whole = Chunk(
                    chunk.columns,
                    chunk.rows + offset if offset else chunk.rows,
                    chunk.lines,
                    sorted([*due, *_moved(chunk.errors, offset)], key=row_order),
                    chunk.coded,
                )
                # The whole block is converted at once (pyarrow's and numpy's calls cost the same for 8k rows as for
                # 50k), then handed on in chunks of chunk_rows.
                yield from split_chunk(whole, chunk_rows)
            offset += block.rows
        for start in range(0, len(refused), chunk_rows):
            yield Chunk({}, np.empty(0, dtype=np.int64), None, refused[start : start + chunk_rows])
    except pa.ArrowInvalid as exc:
        raise _rejection(exc) from None


@dataclass
class _Block:
    """One block parsed and judged, its rows counted from its own first record."""

    chunk: Chunk | None  # its good records (None: it has none), those the coercer refuses among its errors
    last: int  # the row of its last good record, judged good or not
    refused: list[RowError]  # its records of the wrong width (or too long)
    rows: int  # its rows: good and refused records (a line of spaces is none)


def _parse_block(
    data: bytes, names: list[str], coercer: Coercer, longest: int, convert: pacsv.ConvertOptions
) -> _Block:
    """One record-aligned block through pyarrow, on one thread (so it numbers the records it refuses), then judged."""
    records = _Records(len(names), longest)
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=len(data) + 1, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=records.refuse),
        convert_options=convert,
    )
    refused = records.malformed_before(None)
    if not table.num_rows:
        return _Block(None, -1, refused, len(refused))
    batches = table.to_batches()
    batch = batches[0] if len(batches) == 1 else table.combine_chunks().to_batches()[0]
    rows = records.rows_of_next(batch.num_rows)
    return _Block(batch_chunk(batch, rows, coercer), int(rows[-1]), refused, batch.num_rows + len(refused))


def _moved(errors: list[RowError], offset: int) -> list[RowError]:
    """Row errors numbered from a block's first record, renumbered from the file's (in place)."""
    if offset:
        for e in errors:
            e.row = int(e.row or 0) + offset
    return errors


def _in_order(source: Iterator[bytes], parse: Callable[[bytes], _Block], threads: int) -> Iterator[_Block]:
    """parse(block) for every block of `source`, on `threads` threads, handed on in order.

    At most `threads + 1` blocks are read and not yet handed on: the next is read only when one is taken, so
    memory follows the blocks, not the file. A fault of the source (a record too long) is raised in its turn,
    after the blocks before it, as the sequential reader raised it.
    """
    pending: deque[Future[_Block]] = deque()
    failed: pa.ArrowInvalid | None = None
    done = False
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="csv-parse") as pool:
        try:
            while True:
                while not done and len(pending) <= threads:
                    try:
                        data = next(source)
                    except StopIteration:
                        done = True
                    except pa.ArrowInvalid as exc:
                        failed, done = exc, True
                    else:
                        pending.append(pool.submit(parse, data))
                if not pending:
                    break
                yield pending.popleft().result()
            if failed is not None:
                raise failed
        finally:
            for future in pending:  # a reader left early: blocks not begun are dropped, those begun end soon
                future.cancel()


class _Records:
    """Every record's row number in one block, from pyarrow's record numbers.

    pyarrow numbers the records it parses from 1, skipping empty lines (a quoted line break inside
    a record does not start a new one). Good records arrive in a batch, without numbers; refused
    ones (a wrong number of fields) through `refuse`, with theirs, before it. So the good records
    take the numbers that no refused record took, and a record's row is its number less one, less
    the lines of spaces before it: counted from the block's first record.
    """

    def __init__(self, width: int, longest: int = MAX_ROW_BYTES) -> None:
        self._lock = threading.Lock()
        self.width, self.longest = width, longest
        self.next = 1  # the number the next good record may take
        self.refused: list[int] = []  # numbers of refused records at or after `next`
        self.spaces: list[int] = []  # numbers of records that are only spaces: blank lines, not rows
        self.malformed: list[tuple[int, str]] = []  # (number, reason) of refused rows not yet reported

    def refuse(self, row: pacsv.InvalidRow) -> str:
        """pyarrow's invalid_row_handler: note the record, skip it."""
        if row.number is None:  # only when pyarrow parses on several threads, which a block never is
            raise FileRejected("the CSV reader could not number its rows")
        with self._lock:
            self.refused.append(int(row.number))
            if TOO_LONG in row.text:
                most = f"{self.longest >> 20} MiB" if self.longest >= 1 << 20 else f"{self.longest:,} bytes"
                reason = f"is longer than {most}, the most a CSV row may hold: it was not read"
                self.malformed.append((int(row.number), reason))
            elif row.text.strip():
                reason = f"has {row.actual_columns} values but the header has {self.width} columns"
                self.malformed.append((int(row.number), reason))
            else:
                self.spaces.append(int(row.number))
        return "skip"

    def rows_of_next(self, n: int) -> np.ndarray:
        """Row numbers of the next `n` good records."""
        with self._lock:
            return self._rows_of_next(n)

    def _rows_of_next(self, n: int) -> np.ndarray:
        taken = [k for k in self.refused if k >= self.next]
        numbers = np.arange(self.next, self.next + n + len(taken), dtype=np.int64)
        if taken:
            numbers = numbers[~np.isin(numbers, taken)]
        numbers = numbers[:n]
        if n:
            self.next = int(numbers[-1]) + 1
        self.refused = [k for k in taken if k >= self.next]
        return self._rows(numbers)

    def malformed_before(self, row: int | None) -> list[RowError]:
        """The refused rows numbered below `row` (all of them for None), as errors, taken off the list."""
        with self._lock:
            return self._malformed_before(row)

    def _malformed_before(self, row: int | None) -> list[RowError]:
        if not self.malformed:
            return []
        numbers = np.array([k for k, _ in self.malformed], dtype=np.int64)
        rows = self._rows(numbers)
        due = rows < row if row is not None else np.ones(len(rows), dtype=bool)
        out = [
            RowError(int(r), None, [FieldError(None, None, reason)])
            for r, (_, reason), d in zip(rows.tolist(), self.malformed, due.tolist(), strict=True)
            if d
        ]
        self.malformed = [m for m, d in zip(self.malformed, due.tolist(), strict=True) if not d]
        return out

    def _rows(self, numbers: np.ndarray) -> np.ndarray:
        spaces = np.sort(np.array(self.spaces, dtype=np.int64))
        return numbers - 1 - np.searchsorted(spaces, numbers)


def _text_type(name: str, coercer: Coercer) -> pa.DataType:
    """Every cell as text; a text feature's as a dictionary, so its few distinct values are judged once each."""
    spec = next((f for f in coercer.features if f.name == name), None)
    if spec is not None and spec.kind == "string":
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def _rejection(exc: pa.ArrowInvalid) -> FileRejected:
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text:
        return FileRejected("the file is not valid UTF-8")
    if "straddling" in text or "block" in text:
        return FileRejected(
            f"malformed CSV: a row is longer than {BLOCK_BYTES >> 20} MiB (or a quote is never closed): {text}"
        )
    return FileRejected(f"malformed CSV: {text}")


def _read_header(reader: BinaryIO) -> list[str] | None:
    """The header record; leaves `reader` at the first data line."""
    raw_lines: list[bytes] = []

    def lines() -> Iterator[str]:
        while True:
            raw = reader.readline(MAX_HEADER_BYTES)
            if not raw:
                return
            if not raw.endswith(b"\n") and len(raw) >= MAX_HEADER_BYTES:
                raise FileRejected(f"the header is longer than {MAX_HEADER_BYTES >> 20} MiB", line=1)
            if not raw_lines:
                raw = raw.removeprefix(_BOM)
            if b"\r" in raw.rstrip(b"\r\n"):
                # pyarrow reads rows ending in a lone CR, but the header is read here, line by line.
                raise FileRejected(
                    "the header ends with a lone CR (old Mac line endings): save the file with LF or CRLF", line=1
                )
            raw_lines.append(raw)
            yield raw.decode("utf-8")

    records = csv.reader(lines())
    try:
        header = next(records, None)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file is not valid UTF-8 ({exc.reason} in the header)") from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV header: {exc}", line=1) from None
    return header


def _check_header(header: list[str], coercer: Coercer) -> list[str]:
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
    return names


# --- the answers ----------------------------------------------------------------------------------


class CsvPredictions(ArrowPredictions):
    """`row` and the outputs' columns, with a header; a record per answered row."""

    content_type = "text/csv"
    suffix = ".csv"

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...]) -> None:
        fields = [pa.field("row", pa.int64())]
        for spec in outputs:
            fields += [pa.field(name, kind) for name, kind in csv_columns(spec)]
        super().__init__(sink, outputs, pa.schema(fields))

    def _open(self, to: ToSink) -> Any:
        return pacsv.CSVWriter(to, self.schema)  # writes the header now

    def _columns(self, outputs: dict[str, np.ndarray]) -> list[pa.Array]:
        return [arr for spec in self.outputs for arr in _csv_values(spec, outputs[spec.name])]


def csv_columns(spec: TensorSpec) -> list[tuple[str, pa.DataType]]:
    """The CSV columns of one output: (name, Arrow type) for each."""
    if spec.kind == "string" or spec.size is None:
        return [(spec.name, pa.string())]  # the value's text (one string), or its JSON
    kind = {"float": pa.float64(), "bool": pa.bool_()}.get(spec.kind)
    if kind is None:
        kind = pa.uint64() if spec.dtype == "uint64" else pa.int64()
    if tuple(spec.shape) in ((), (1,)):
        return [(spec.name, kind)]
    dims = [int(d) for d in spec.shape if d is not None]
    return [(spec.name + "".join(f"[{i}]" for i in at), kind) for at in np.ndindex(*dims)]


def _csv_values(spec: TensorSpec, arr: np.ndarray) -> list[pa.Array]:
    """One output's batch as the arrays of its CSV columns (see `csv_columns`)."""
    n = len(arr)
    columns = csv_columns(spec)
    if pa.types.is_string(columns[0][1]):
        one_text = spec.kind == "string" and int(np.prod(arr.shape[1:], dtype=np.int64)) == 1
        values = jsonable(arr.reshape(n) if one_text else arr)
        if one_text:
            return [pa.array([v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())]
        return [pa.array([json.dumps(v, ensure_ascii=False) for v in values], pa.string())]
    flat = arr.reshape(n, len(columns))
    if spec.kind == "float":
        flat = flat.astype(np.float64)  # as an HTTP answer writes float32: its exact float64 value
    return [pa.array(np.ascontiguousarray(flat[:, j]), kind) for j, (_, kind) in enumerate(columns)]


def read(source: ObjectSource, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """A CSV object's rows in chunks: refused at once for a model with array inputs."""
    check_csv_model(coercer)
    reader = source.stream()
    try:
        yield from csv_chunks(reader, text_coercer(coercer), chunk_rows)
    finally:
        reader.close()


FORMAT = Format(
    "csv",
    (".csv",),
    read,
    lambda sink, signature: CsvPredictions(sink, signature.outputs),
    CsvPredictions.suffix,
    CsvPredictions.content_type,
)

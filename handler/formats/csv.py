"""CSV rows -> chunks of coerced feature batches, streamed by pyarrow (the file is never held whole).

A CSV needs a header naming every feature (any order) and suits models whose features are all
scalars, or of shape [1] (tabular models). The header is read here, with the standard library, so a missing,
repeated or unknown column rejects the file by name before any row is parsed. The rows are then
streamed by `pyarrow.csv.open_csv` in blocks, every cell read as text; `formats/arrow.py` casts the
numbers with `pyarrow.compute` and judges what does not cast with the coercer, cell by cell.
Cells are text by nature, so numbers are parsed from them whatever NUMERIC_STRINGS says.

Where each row is in the file: `row` counts the records after the header from 0, in file order,
good and refused alike; blank lines (and lines of spaces) are not rows, and a quoted value with a
line break is still one row. A record with the wrong number of fields is refused with its row
number too: pyarrow numbers the records it refuses (when it parses on one thread, which this
reader does), and that number places the record among the rows. No `line` is reported: pyarrow's
number counts records, skipping blank lines, so it is not a line number, and pyarrow says
nothing of where a good record starts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from handler.core.answer import jsonable
from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec
from handler.errors import FieldError
from handler.formats.arrow import ArrowPredictions, ToSink, batch_chunk
from handler.formats.base import Chunk, FileRejected, Format, ObjectSource, RowError, Sink, split_chunk, text_coercer
from handler.formats.long_rows import MAX_ROW_BYTES, TOO_LONG, LongRowsCut

# Bytes pyarrow parses at a time. A line longer than this is cut out before (a row error of its own,
# formats/long_rows.py); a record of many lines (quoted line breaks) much longer cannot be read: the file is
# rejected, saying so.
BLOCK_BYTES = 4 << 20
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


def csv_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int, block_bytes: int = BLOCK_BYTES) -> Iterator[Chunk]:
    """Stream a CSV with a header into chunks of at most `chunk_rows` parsed rows (and the refused records among them).

    `reader` is read from its current position: the header first, then pyarrow reads the rest.
    """
    header = _read_header(reader)
    if header is None:
        return
    names = _check_header(header, coercer)
    longest = min(MAX_ROW_BYTES, block_bytes)  # pyarrow parses a record over two blocks at most
    records = _Records(len(names), longest)
    paced = _Paced(LongRowsCut(reader, len(names), longest), block_bytes)
    try:
        stream = pacsv.open_csv(
            paced,
            # One thread: pyarrow numbers the records it refuses only then, and the numbers place them among the rows.
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=records.refuse),
            convert_options=pacsv.ConvertOptions(
                column_types={name: _text_type(name, coercer) for name in names},
                include_columns=list(coercer.names),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        while True:
            try:
                with paced.taking():
                    batch = stream.read_next_batch()
            except StopIteration:
                break
            if not batch.num_rows:
                continue
            rows = records.rows_of_next(batch.num_rows)
            # The whole block is converted at once (pyarrow's and numpy's calls cost the same for 8k rows as for
            # 50k), then handed on in chunks of chunk_rows.
            whole = batch_chunk(batch, rows, coercer, errors=records.malformed_before(int(rows[-1])))
            yield from split_chunk(whole, chunk_rows)
        rest = records.malformed_before(None)
        for start in range(0, len(rest), chunk_rows):
            yield Chunk({}, np.empty(0, dtype=np.int64), None, rest[start : start + chunk_rows])
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return  # a header and nothing after it, not even a line break: no rows
        raise _rejection(exc) from None
    finally:
        paced.release()  # a reader left early: pyarrow's read-ahead thread must not wait for batches no one takes


class _Paced(io.RawIOBase):
    """The byte stream, read by pyarrow's read-ahead no more than `ahead` blocks past the batches taken.

    pyarrow's streaming CSV reader reads up to 32 blocks ahead on its own I/O thread: 128 MiB
    with 4 MiB blocks, the whole of a smaller file, whatever the model keeps up with. Here its
    reads wait while `ahead` blocks are read and not yet taken as batches. While a batch is being
    taken one more block may be read, and past that a read waits at most `STALL` seconds: a row
    longer than the blocks allowed needs them, and waiting for ever then would be a deadlock.
    """

    STALL = 0.05

    def __init__(self, raw: io.RawIOBase, block_bytes: int, ahead: int = 2) -> None:
        self._raw, self._block, self._ahead = raw, block_bytes, ahead
        self._turn = threading.Condition()
        self._read = 0
        self._taken = 0
        self._taking = False
        self._released = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._turn:
            while not self._released:
                allowed = (self._taken + self._ahead + (1 if self._taking else 0)) * self._block
                if self._read < allowed:
                    break
                if not self._turn.wait(self.STALL) and self._taking:
                    break  # a batch is being taken and still needs bytes: let them through
            if self._released:
                return 0  # the reader was closed: end of stream for pyarrow's thread
        n = self._raw.readinto(buffer) or 0  # straight into pyarrow's buffer: no bytes object in between
        with self._turn:
            self._read += n
        return n

    @contextlib.contextmanager
    def taking(self) -> Iterator[None]:
        with self._turn:
            self._taking = True
            self._turn.notify_all()
        try:
            yield
        finally:
            with self._turn:
                self._taking = False
                self._taken += 1

    def release(self) -> None:
        with self._turn:
            self._released = True
            self._turn.notify_all()


class _Records:
    """Every record's row number, from pyarrow's record numbers.

    pyarrow numbers the records after the header from 1, skipping empty lines (a quoted line
    break inside a record does not start a new one). Good records arrive in batches, without
    numbers; refused ones (a wrong number of fields) through `refuse`, with theirs, before the
    batch they fall in. So the good records of a batch take the next numbers that no refused
    record took, and a record's row is its number less one, less the lines of spaces before it.
    pyarrow may parse the next block on its own thread while a batch is taken: `refuse` is called
    from there, hence the lock.
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
        if row.number is None:  # only when parsing on several threads, which csv_chunks never does
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

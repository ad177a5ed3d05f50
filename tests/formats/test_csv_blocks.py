"""A CSV stream cut into record-aligned blocks (formats/csv_blocks.py) where pyarrow's streaming reader cuts it.

The reference is pyarrow itself: its streaming reader, reading `block_bytes` at a time on one thread, hands over
one batch per read. Each block parsed alone must give the rows of the batch it stands for, and the reader's
error (a record too long) where it gives one, whatever the bytes: quotes where writers put them or anywhere,
CR, CRLF and LF, byte order marks, blank lines. The CSV reader's chunks (rows and errors) are then those of one
sequential reader, whatever the number of threads parsing the blocks.
"""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.formats import csv_blocks
from handler.formats.base import FileRejected
from handler.formats.csv import csv_chunks
from handler.formats.csv_blocks import BOM, blocks, record_end
from tests.formats.test_csv import NAMES, _coercer, _csv, _file, _row, served

COLUMNS = ["a", "b", "c"]
PIECES = [b"a", b"1", b",", b'"', b"\n", b"\r", b"\r\n", BOM, b"xx", b",,", b'""', b"  ", b'"x,y"', b'"l\nm"']


def _options(block_bytes: int) -> dict[str, Any]:
    return {
        "read_options": pacsv.ReadOptions(column_names=COLUMNS, block_size=block_bytes, use_threads=False),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"),
        "convert_options": pacsv.ConvertOptions(
            column_types={n: pa.string() for n in COLUMNS}, strings_can_be_null=False
        ),
    }


def _batches_of_the_stream(body: bytes, block_bytes: int) -> Any:
    """pyarrow's streaming reader: the rows of each batch that has any, or its error."""
    try:
        return [b.to_pydict() for b in pacsv.open_csv(io.BytesIO(body), **_options(block_bytes)) if b.num_rows]
    except pa.ArrowInvalid as exc:
        return "Empty CSV file" if "Empty CSV file" in str(exc) else str(exc)


def _blocks_parsed_alone(body: bytes, block_bytes: int) -> Any:
    out = []
    try:
        for block in blocks(io.BytesIO(body), block_bytes):
            options = _options(block_bytes)
            options["read_options"] = pacsv.ReadOptions(column_names=COLUMNS, block_size=len(block) + 1)
            table = pacsv.read_csv(pa.py_buffer(block), **options)
            if table.num_rows:
                out.append(table.to_pydict())
    except pa.ArrowInvalid as exc:
        return str(exc)
    return out


@settings(max_examples=600, deadline=None)
@given(
    body=st.lists(st.sampled_from(PIECES), min_size=1, max_size=70).map(b"".join),
    block_bytes=st.integers(4, 40),
)
def test_each_block_holds_the_rows_of_the_streaming_readers_batch(body: bytes, block_bytes: int) -> None:
    want = _batches_of_the_stream(body, block_bytes)
    # pyarrow's reader refuses a stream without a byte to parse; the CSV reader takes it as no rows, as these blocks
    assert _blocks_parsed_alone(body, block_bytes) == ([] if want == "Empty CSV file" else want)


def _written(rng: random.Random, rows: int, quoting: int) -> bytes:
    cells = ["1", "ab", "", "x,y", "l\nm", 'q"q', '"', "a\rb", "\r\n", " "]
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator=rng.choice(["\n", "\r\n", "\r"]))
    writer.writerows([[rng.choice(cells) for _ in range(3)] for _ in range(rows)])
    return buf.getvalue().encode()


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
def test_files_quoted_as_writers_quote_them_are_cut_as_pyarrow_cuts_them(quoting: int) -> None:
    rng = random.Random(quoting)
    for _ in range(300):
        body = _written(rng, rng.randint(1, 30), quoting)
        block_bytes = rng.randint(4, 64)
        assert _blocks_parsed_alone(body, block_bytes) == _batches_of_the_stream(body, block_bytes), body


@settings(max_examples=400, deadline=None)
@given(body=st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join))
def test_the_three_ways_to_find_the_last_record_end_agree(body: bytes) -> None:
    """The cheap ways (the last line break; quotes counted with numpy) where they apply, against the lexer's."""
    match = csv_blocks._RECORDS.match(body)
    lexed = match.end() if match is not None else 0
    assert record_end(body) == lexed
    if b'"' not in body:
        assert csv_blocks._last_line_end(body, len(body)) + 1 == lexed


def test_a_record_too_long_fails_after_the_chunks_before_it_as_the_sequential_reader_did() -> None:
    """A quote never closed: the rows before it are handed on first, whatever the threads ahead found."""
    rows = [_row(age=str(20 + i % 50)) for i in range(3000)]
    body = _csv(*rows, _row(internet_service='"never closed'), *rows)
    for threads in (1, 2, 3):
        seen = []
        with pytest.raises(FileRejected) as info:
            for chunk in csv_chunks(io.BytesIO(body), _coercer(), 500, block_bytes=4096, threads=threads):
                seen += chunk.rows.tolist()
        assert info.value.reason.startswith("malformed CSV: a row is longer than"), info.value.reason
        assert seen == list(range(3000)), len(seen)


@pytest.mark.parametrize("block_bytes", [1000, 4096])
def test_chunks_are_the_same_whatever_the_threads(block_bytes: int) -> None:
    """The chunks' rows and errors, not only the file's: a resumed job finds its chunk boundaries again."""
    body = _file(random.Random(block_bytes), 2000, 0.05, list(NAMES))

    def chunks(threads: int) -> list[Any]:
        out = []
        for c in csv_chunks(io.BytesIO(body), _coercer(), 64, block_bytes=block_bytes, threads=threads):
            out.append((c.rows.tolist(), [(e.row, [(f.feature, f.reason) for f in e.errors]) for e in c.errors]))
        return out

    one = chunks(1)
    assert len(one) > 20 and any(errors for _, errors in one)
    assert chunks(2) == one
    assert chunks(3) == one
    assert served(csv_chunks(io.BytesIO(body), _coercer(), 64, block_bytes=block_bytes, threads=2), 64)

"""The fast CSV path gives exactly what csv.reader and the coercer give: values, row and line numbers, reasons."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from itertools import islice
from typing import Any, BinaryIO, cast

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.core.coerce import CoercePolicy, Coercer
from handler.preprocessing import CategoricalFeature, NumericFeature, Preprocessor
from handler.sources import s3
from handler.sources.csv_fast import BlockParser, LineSource, _parse_numbers
from tests.conftest import ARTIFACTS

PRE = Preprocessor.load(ARTIFACTS / "preprocessing.json")
NAMES = PRE.names
NUMERIC = [f.name for f in PRE.features if isinstance(f, NumericFeature)]
VOCAB = {f.name: f.vocabulary for f in PRE.features if isinstance(f, CategoricalFeature)}
STRICT = [f.name for f in PRE.features if isinstance(f, CategoricalFeature) and f.oov == "error"]
assert STRICT, "the reference model should have a strict-vocabulary feature for these tests"

NUMBER_CELLS = [
    "12", "-3.5", "+.5", "5.", "0", "-0", "007", "1e5", "2.5E-3", " 7 ", "\t8", "nan", "NaN", "-inf", "Infinity",
    "", " ", "abc", "1_000", "1__0", "\u0661\u0662", "12345678901234567890.5", "0.1234567890123456789012345",
    "9007199254740993", "9007199254740992", "1.2.3", "-", ".", "+-1", "0x10", "1e999", "3.14159265358979323846",
]  # fmt: skip
CATEGORY_CELLS = ["", " one_year", "weekly", "été", "a,b", 'say "hi"', "two\nlines", "x" * 80]


def _coercer(**policy: Any) -> Coercer:
    return Coercer(PRE, CoercePolicy(numeric_strings="accept", **policy))


def legacy_csv_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int) -> Iterator[s3.Chunk]:
    """The S3 CSV path before the fast one (TextIOWrapper + csv.reader + text_rows_chunk): the oracle."""
    text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="")
    records = csv.reader(text)
    try:
        header = next(records, None)
        if header is None:
            return
        index = s3._csv_header(header, coercer)
        width = len(header)
        last = records.line_num
        row0 = 0
        while True:
            batch: list[list[str]] = []
            ends: list[int] = []
            for rec in islice(records, chunk_rows):
                batch.append(rec)
                ends.append(records.line_num)
            if not batch:
                return
            starts = [last + 1, *(e + 1 for e in ends[:-1])]
            last = ends[-1]
            keep = [i for i, r in enumerate(batch) if len(r) > 1 or (r and (width == 1 or r[0].strip()))]
            batch, starts = [batch[i] for i in keep], [starts[i] for i in keep]
            if batch:
                yield s3.text_rows_chunk(batch, starts, row0, index, width, coercer)
                row0 += len(batch)
    except UnicodeDecodeError:
        raise s3.FileRejected("not UTF-8") from None
    except csv.Error as exc:
        raise s3.FileRejected(f"malformed CSV: {exc}", line=records.line_num) from None


def _run(chunks: Iterator[s3.Chunk]) -> list[dict[str, Any]] | tuple[str, int | None]:
    """Chunks as plain data to compare; a rejected file as (kind, line)."""
    try:
        out = []
        for c in chunks:
            out.append(
                {
                    "columns": {k: v.tolist() for k, v in c.columns.items()},
                    "rows": c.rows.tolist(),
                    "lines": None if c.lines is None else c.lines.tolist(),
                    "errors": [e.to_json() for e in c.errors],
                }
            )
        return out
    except s3.FileRejected as exc:
        return ("rejected: malformed" if exc.reason.startswith("malformed") else "rejected", exc.line)


def _all_ways(body: bytes, coercer: Coercer, chunk_rows: int) -> dict[str, Any]:
    return {
        "legacy": _run(legacy_csv_chunks(io.BytesIO(body), coercer, chunk_rows)),
        "slow": _run(s3.csv_chunks(io.BytesIO(body), coercer, chunk_rows, fast=False)),
        "fast": _run(s3.csv_chunks(io.BytesIO(body), coercer, chunk_rows)),
    }


def _assert_same(ways: dict[str, Any]) -> None:
    legacy = ways["legacy"]
    for name in ("slow", "fast"):
        assert ways[name] == legacy, f"the {name} path differs from csv.reader + the coercer"


class _Trickle(io.RawIOBase):
    """A stream that returns at most `step` bytes per read: every buffer boundary gets exercised."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._at, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._step if size is None or size < 0 else min(size, self._step)
        out = self._data[self._at : self._at + n]
        self._at += len(out)
        return out


def _trickle(data: bytes, step: int) -> BinaryIO:
    return cast(BinaryIO, _Trickle(data, step))


# --- lines ---------------------------------------------------------------------------------

LINE_BYTES = st.lists(
    st.sampled_from([b"a", b",", b"\n", b"\r", b"\r\n", b'"', b"\xc3\xa9", b"\xef\xbb\xbf", b"  ", b"1.5"]),
    max_size=40,
).map(b"".join)


@given(body=LINE_BYTES, step=st.integers(1, 9), bom=st.booleans())
def test_text_lines_split_exactly_as_textiowrapper_splits_them(body: bytes, step: int, bom: bool) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + body
    want = list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    source = LineSource(_trickle(data, step), read_bytes=step)
    assert list(source) == want
    assert source.line_num == len(want)


@given(body=LINE_BYTES, step=st.integers(1, 9), takes=st.lists(st.integers(1, 4), max_size=6))
def test_blocks_taken_and_put_back_leave_the_same_lines(body: bytes, step: int, takes: list[int]) -> None:
    body = body.replace(b"\r", b"")  # blocks count LF lines; a lone CR is the slow path's business
    want = body.removeprefix(b"\xef\xbb\xbf")
    source = LineSource(_trickle(body, step), read_bytes=step)
    got: list[bytes] = []
    for k in takes:
        block, n = source.take(k)
        assert n == len(block.splitlines()) and n <= k
        if k % 2:
            source.untake(block, n)
            got += [line.encode() for line in islice(source, n)]
        else:
            got += block.splitlines(keepends=True)
    got += [line.encode() for line in source]
    assert b"".join(got) == want
    assert source.line_num == len(want.splitlines())


# --- numbers -------------------------------------------------------------------------------


def _numbers(cells: list[str]) -> tuple[list[float], list[bool]]:
    text = ",".join(cells).encode()
    data = np.frombuffer(text + b"\n", dtype=np.uint8)
    seps = np.flatnonzero((data == ord(",")) | (data == ord("\n")))
    starts = np.concatenate([[0], seps[:-1] + 1])
    values, bad = _parse_numbers(text, data, starts, seps)
    return values.tolist(), bad.tolist()


def _as_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return float("nan")


@pytest.mark.parametrize("cell", [c for c in NUMBER_CELLS if "\n" not in c and "," not in c])
def test_each_number_cell_parses_to_the_double_float_gives(cell: str) -> None:
    (value,), (bad,) = _numbers([cell])
    want = _as_float(cell)
    assert bad == (not np.isfinite(want)), f"{cell!r}: suspect={bad}"
    assert np.isnan(value) if np.isnan(want) else value == want and np.signbit(value) == np.signbit(want)


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(0, 25).flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p)).map(str),
            st.integers(-(10**20), 10**20).map(str),
            st.from_regex(r"[+-]?[0-9]{0,12}\.?[0-9]{0,12}", fullmatch=True),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_decimal_text_parses_bit_for_bit_like_float(cells: list[str]) -> None:
    values, bad = _numbers(cells)
    for cell, value, b in zip(cells, values, bad, strict=True):
        want = _as_float(cell)
        if np.isnan(want):
            assert b and np.isnan(value), cell
        else:
            assert value == want and np.signbit(value) == np.signbit(want), f"{cell!r}: {value!r} != {want!r}"


# --- whole files ---------------------------------------------------------------------------


def _good_row(rng: random.Random) -> dict[str, str]:
    row = {name: repr(round(rng.uniform(0, 500), rng.randint(0, 4))) for name in NUMERIC}
    row.update({name: rng.choice(vocab) for name, vocab in VOCAB.items()})
    return row


def _line(row: dict[str, str], header: list[str], quote_all: bool = False) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerow(
        [row.get(h, "x") for h in header]
    )
    return buf.getvalue()


def _file(rng: random.Random, n: int, oddity: float, header: list[str]) -> bytes:
    """A CSV of n lines: mostly good rows, a share `oddity` of them unusual in one of many ways."""
    lines = [",".join(header)]
    for _ in range(n):
        row = _good_row(rng)
        if rng.random() >= oddity:
            lines.append(_line(row, header))
            continue
        kind = rng.randrange(9)
        if kind == 0:
            row[rng.choice(NUMERIC)] = rng.choice(NUMBER_CELLS)
            lines.append(_line(row, header))
        elif kind == 1:
            row[rng.choice(list(VOCAB))] = rng.choice(CATEGORY_CELLS)
            lines.append(_line(row, header))
        elif kind == 2:
            lines.append(rng.choice(["", " ", "\t", ",,", "1"]))
        elif kind == 3:
            cells = _line(row, header).split(",")
            lines.append(",".join(cells[: rng.randrange(len(cells))] if rng.random() < 0.5 else [*cells, "extra"]))
        elif kind == 4:
            lines.append(_line(row, header, quote_all=True))
        elif kind == 5:
            lines.append(_line(row, header) + "\r")  # becomes CRLF with the LF join below
        elif kind == 6:
            lines.append(_line(row, header).replace(",", "\r", 1))  # a lone CR ends a line for csv.reader
        elif kind == 7:
            row[rng.choice(NUMERIC)] = rng.choice(["nan", "inf", "-Infinity"])
            lines.append(_line(row, header))
        else:
            row[rng.choice(STRICT)] = rng.choice(["weekly", "One_year", "été"])
            lines.append(_line(row, header))
    ending = rng.choice(["\n", "\r\n"])
    text = ending.join(lines) + rng.choice(["", ending, ending * 2])
    return (b"\xef\xbb\xbf" if rng.random() < 0.2 else b"") + text.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 60),
    oddity=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    chunk_rows=st.integers(1, 25),
    non_finite=st.sampled_from(["reject", "impute"]),
    extra_column=st.booleans(),
)
def test_fast_and_slow_paths_give_identical_chunks(
    seed: int, n: int, oddity: float, chunk_rows: int, non_finite: str, extra_column: bool
) -> None:
    rng = random.Random(seed)
    header = [*NAMES, *(["comment"] if extra_column else [])]
    rng.shuffle(header)
    coercer = _coercer(non_finite=non_finite, unknown_features="ignore" if extra_column else "reject")
    _assert_same(_all_ways(_file(rng, n, oddity, header), coercer, chunk_rows))


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 8192])
def test_a_large_mostly_clean_file_is_the_same_both_ways(chunk_rows: int) -> None:
    rng = random.Random(chunk_rows)
    body = _file(rng, 3000, 0.01, list(reversed(NAMES)))
    ways = _all_ways(body, _coercer(), chunk_rows)
    _assert_same(ways)
    assert sum(len(c["rows"]) for c in ways["fast"]) > 2900


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xff\xfe not utf-8\n", "invalid UTF-8 in the header"),
        (b"\n".join([",".join(NAMES).encode(), b"1," * 11 + b"\xff"]) + b"\n", "invalid UTF-8 in a row"),
        (
            ",".join(NAMES).encode() + b"\n" + b"1," * 11 + b"x" * (csv.field_size_limit() + 1) + b"\n",
            "a field over csv's size limit",
        ),
        (",".join(NAMES).encode() + b"\n1,2\x00,3\n", "a NUL byte"),
        (b"", "an empty file"),
        (",".join(NAMES).encode(), "a header and nothing else"),
    ],
)
def test_files_the_reader_rejects_are_rejected_the_same_way(body: bytes, why: str) -> None:
    _assert_same(_all_ways(body, _coercer(), 4))


def test_a_plain_block_is_parsed_without_csv_reader() -> None:
    rng = random.Random(1)
    header = list(NAMES)
    body = "\n".join(_line(_good_row(rng), header) for _ in range(50)) + "\n\n"
    index = {name: header.index(name) for name in NAMES}
    parsed = BlockParser(PRE, index, len(header)).parse(body.encode(), first_line=2)
    assert parsed is not None, "a block of plain rows should not need csv.reader"
    assert parsed.lines.tolist() == list(range(2, 52))
    assert not parsed.suspect.any()


def test_a_block_with_every_field_quoted_is_parsed_without_csv_reader() -> None:
    rng = random.Random(2)
    rows = [_good_row(rng) for _ in range(20)]
    body = "\r\n".join(_line(row, NAMES, quote_all=True) for row in rows) + "\r\n"
    parsed = BlockParser(PRE, {name: i for i, name in enumerate(NAMES)}, len(NAMES)).parse(body.encode(), 2)
    assert parsed is not None, "plainly quoted fields should not need csv.reader"
    assert parsed.columns["contract_type"].tolist() == [r["contract_type"] for r in rows]
    assert parsed.columns["age"].tolist() == [float(r["age"]) for r in rows]


def _with(cell: str, at: int = 5) -> str:
    row = _line(_good_row(random.Random(3)), NAMES).split(",")
    row[at] = cell
    return ",".join(row)


@pytest.mark.parametrize(
    "line",
    [_with('"say ""hi"""'), _with('"a,b"'), _with('x"y'), _with('"x"y'), _with('"'), "a\rb", "1,2"],
    ids=["escaped_quote", "comma_in_quotes", "quote_inside", "text_after_quote", "lone_quote", "lone_cr", "fields"],
)
def test_unusual_blocks_are_left_to_csv_reader(line: str) -> None:
    index = {name: i for i, name in enumerate(NAMES)}
    assert BlockParser(PRE, index, len(NAMES)).parse((line + "\n").encode(), first_line=2) is None


def test_prediction_lines_are_the_bytes_the_per_row_format_gave() -> None:
    rng = np.random.default_rng(0)
    for outputs in (
        rng.random((50, 1)).astype(np.float32),
        rng.random((50, 3)).astype(np.float32) * 1e-5,
        rng.random(50),
        np.array([[0.5], [np.nan], [np.inf]]),
    ):
        rows, lines = np.arange(len(outputs)) + 10, np.arange(len(outputs)) + 12
        as_text = str if np.isfinite(outputs).all() else json.dumps
        want = "".join(
            f'{{"row": {r}, "line": {ln}, "prediction": {as_text(p)}}}\n'
            for r, ln, p in zip(rows.tolist(), lines.tolist(), outputs.tolist(), strict=True)
        )
        assert s3.prediction_lines(rows, lines, outputs) == want
        pairs = zip(rows.tolist(), outputs.tolist(), strict=True)
        want_npy = "".join(f'{{"row": {r}, "prediction": {as_text(p)}}}\n' for r, p in pairs)
        assert s3.prediction_lines(rows, None, outputs) == want_npy

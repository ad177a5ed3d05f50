"""csv_fast: lines cut exactly as TextIOWrapper cuts them, numbers parsed bit for bit as float(), plain blocks.

Whole files through both paths are checked against a reference reader in test_csv_chunks.py.
"""

from __future__ import annotations

import csv
import io
import random
from itertools import islice
from typing import BinaryIO, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.core.signature import Signature
from handler.sources.csv_fast import BlockParser, LineSource, _parse_numbers
from tests.support import zoo

SIGNATURE = Signature.from_dict(zoo.manifest("churn")["signature"])
FEATURES = SIGNATURE.features
NAMES = SIGNATURE.feature_names
NUMBER_CELLS = [
    "12", "-3.5", "+.5", "5.", "0", "-0", "007", "1e5", "2.5E-3", " 7 ", "\t8", "nan", "NaN", "-inf", "Infinity",
    "", " ", "abc", "1_000", "1__0", "\u0661\u0662", "12345678901234567890.5", "0.1234567890123456789012345",
    "9007199254740993", "9007199254740992", "1.2.3", "-", ".", "+-1", "0x10", "1e999", "3.14159265358979323846",
]  # fmt: skip


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


# --- plain blocks --------------------------------------------------------------------------

ROW = {
    "tenure_months": "12",
    "monthly_charges": "70.5",
    "total_charges": "846.25",
    "support_calls": "1",
    "age": "40",
    "contract_type": "one_year",
    "payment_method": "credit_card",
    "internet_service": "dsl",
    "data_usage_gb": "10.5",
    "days_since_last_login": "3",
    "satisfaction_score": "4",
    "paperless_billing": "1",
}


def _line(row: dict[str, str], header: list[str], quote_all: bool = False) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerow(
        [row[h] for h in header]
    )
    return buf.getvalue()


def _parser(header: list[str]) -> BlockParser:
    return BlockParser(FEATURES, {name: header.index(name) for name in NAMES}, len(header))


def _rows(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{**ROW, "age": str(rng.randint(18, 90)), "total_charges": f"{rng.uniform(0, 9000):.2f}"} for _ in range(n)]


def test_a_plain_block_is_parsed_into_the_right_columns_without_csv_reader() -> None:
    header = list(reversed(NAMES))
    rows = _rows(50, 1)
    body = "\n".join(_line(r, header) for r in rows) + "\n\n"
    parsed = _parser(header).parse(body.encode(), first_line=2)
    assert parsed is not None, "a block of plain rows should not need csv.reader"
    assert parsed.lines.tolist() == list(range(2, 52))
    assert not parsed.suspect.any()
    assert parsed.columns["age"].tolist() == [float(r["age"]) for r in rows]
    assert parsed.columns["total_charges"].tolist() == [float(r["total_charges"]) for r in rows]
    assert parsed.columns["tenure_months"].tolist() == [12.0] * 50
    assert parsed.columns["contract_type"].tolist() == ["one_year"] * 50
    assert parsed.raw_row(3)["age"] == rows[3]["age"]


def test_a_block_with_every_field_quoted_is_parsed_without_csv_reader() -> None:
    rows = _rows(20, 2)
    body = "\r\n".join(_line(row, NAMES, quote_all=True) for row in rows) + "\r\n"
    parsed = _parser(NAMES).parse(body.encode(), 2)
    assert parsed is not None, "plainly quoted fields should not need csv.reader"
    assert parsed.columns["contract_type"].tolist() == ["one_year"] * 20
    assert parsed.columns["age"].tolist() == [float(r["age"]) for r in rows]


def test_an_unknown_category_is_suspect_only_under_a_strict_vocabulary() -> None:
    rows = [ROW, {**ROW, "contract_type": "weekly"}, {**ROW, "payment_method": "crypto"}, {**ROW, "age": "nan"}]
    body = "\n".join(_line(r, NAMES) for r in rows) + "\n"
    parsed = _parser(NAMES).parse(body.encode(), 2)
    assert parsed is not None
    # contract_type has a vocabulary in the signature (strict); payment_method has none (any category).
    assert parsed.suspect.tolist() == [False, True, False, True]
    assert parsed.columns["payment_method"].tolist() == ["credit_card", "credit_card", "crypto", "credit_card"]


def _with(cell: str, at: int = 5) -> str:
    row = _line(ROW, NAMES).split(",")
    row[at] = cell
    return ",".join(row)


@pytest.mark.parametrize(
    "line",
    [_with('"say ""hi"""'), _with('"a,b"'), _with('x"y'), _with('"x"y'), _with('"'), "a\rb", "1,2"],
    ids=["escaped_quote", "comma_in_quotes", "quote_inside", "text_after_quote", "lone_quote", "lone_cr", "fields"],
)
def test_unusual_blocks_are_left_to_csv_reader(line: str) -> None:
    assert _parser(NAMES).parse((line + "\n").encode(), first_line=2) is None

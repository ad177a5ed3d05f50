"""CSV files -> chunks (pyarrow's reader): against a reference reader written here, and rows written by hand.

The reference reader uses only the standard library (`csv.reader` over `TextIOWrapper`, `float()`,
the vocabularies in the committed `preprocessing.json`) and its own statement of the rules the
README gives: `row` counts the records after the header from 0, a record with the wrong number
of fields included (it is refused, with its row); blank lines and lines of spaces are not rows;
no line numbers. It shares no code with `handler/formats`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.core.coerce import CoercePolicy, Coercer
from handler.core.signature import Signature
from handler.formats.base import Chunk, FileRejected, text_coercer
from handler.formats.csv import check_csv_model, csv_chunks
from tests.support import zoo

FEATURES: list[dict[str, Any]] = zoo.manifest("churn")["signature"]["features"]
SIGNATURE = Signature.from_dict(zoo.manifest("churn")["signature"])
NAMES = [f["name"] for f in FEATURES]
NUMERIC = [f["name"] for f in FEATURES if f["dtype"] != "string"]
_PRE = json.loads((zoo.model_dir("churn") / "preprocessing.json").read_text())
VOCAB = {f["name"]: f["vocabulary"] for f in _PRE["features"] if f["kind"] == "categorical"}
STRICT = [f["name"] for f in _PRE["features"] if f["kind"] == "categorical" and f["oov"] == "error"]
MEAN = {f["name"]: f["mean"] for f in _PRE["features"] if f["kind"] == "numeric" and f["op"] == "standardize"}
assert STRICT == ["contract_type"], "the reference model should have one strict-vocabulary feature"

NUMBER_CELLS = [
    "12", "-3.5", "+.5", "5.", "0", "-0", "007", "1e5", "2.5E-3", " 7 ", "\t8", "nan", "NaN", "-inf", "Infinity",
    "", " ", "abc", "1_000", "1__0", "\u0661\u0662", "12345678901234567890.5", "0.1234567890123456789012345",
    "9007199254740993", "9007199254740992", "1.2.3", "-", ".", "+-1", "0x10", "1e999", "3.14159265358979323846",
]  # fmt: skip
CATEGORY_CELLS = ["", " one_year", "weekly", "été", "a,b", 'say "hi"', "two\nlines", "x" * 80]


def _coercer(**policy: Any) -> Coercer:
    return text_coercer(Coercer(SIGNATURE, CoercePolicy(**policy)))


# --- the reference reader ------------------------------------------------------------------


def _judge(rec: list[str], index: dict[str, int], non_finite: str) -> tuple[dict[str, Any], list[Any]]:
    """One record of the right width -> (values by feature, [(feature, reason)]): the README's rules."""
    values: dict[str, Any] = {}
    reasons: list[Any] = []
    for f in FEATURES:
        name, cell = f["name"], rec[index[f["name"]]]
        if f["dtype"] == "string":
            if name in STRICT and cell not in VOCAB[name]:
                reasons.append((name, f"is not a known category; expected one of {', '.join(VOCAB[name])}"))
            values[name] = cell
            continue
        try:
            x = float(cell)
        except ValueError:
            reasons.append((name, "must be a number, got a string that is not one"))
            continue
        if not math.isfinite(x):
            if non_finite == "impute" and f.get("fill_value") is not None:
                x = f["fill_value"]
            else:
                reasons.append((name, "must be a finite number, got NaN or infinity"))
                continue
        values[name] = x
    return values, reasons


def reference(body: bytes, non_finite: str = "reject", unknown: str = "reject") -> Any:
    """(good rows, refused rows) as {row: values} and {row: sorted reasons}; or "rejected"."""
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
    records = csv.reader(text)
    good: dict[int, Any] = {}
    bad: dict[int, Any] = {}
    try:
        header = next(records, None)
        if header is None:
            return good, bad
        names = [h.strip() for h in header]
        if len(set(names)) != len(names) or any(n not in names for n in NAMES):
            return "rejected"
        if unknown == "reject" and any(n not in NAMES for n in names):
            return "rejected"
        index = {n: names.index(n) for n in NAMES}
        width, row = len(header), 0
        for rec in records:
            if not rec or (len(rec) == 1 and width > 1 and not rec[0].strip()):
                continue  # a blank line is no row
            if len(rec) != width:
                bad[row] = [(None, f"has {len(rec)} values but the header has {width} columns")]
                row += 1
                continue
            values, reasons = _judge(rec, index, non_finite)
            if reasons:
                bad[row] = sorted(reasons, key=str)
            else:
                good[row] = values
            row += 1
    except UnicodeDecodeError:
        return "rejected"
    return good, bad


def served(chunks: Iterator[Chunk], chunk_rows: int) -> Any:
    """Chunks in the reference's form (rows in order, checked here); a rejected file as "rejected"."""
    good: dict[int, Any] = {}
    bad: dict[int, Any] = {}
    order: list[int] = []
    try:
        for c in chunks:
            assert len(c.rows) <= chunk_rows
            assert c.lines is None and all(e.line is None for e in c.errors), "a CSV row has no line number"
            # Text columns come coded too, for preprocessing: the codes must give back exactly the column's values.
            assert set(c.coded) == (set(VOCAB) if c.columns else set()), sorted(c.coded)
            for name, (codes, levels) in c.coded.items():
                assert levels[codes].tolist() == c.columns[name].tolist(), f"{name}: codes and column differ"
            for k, row in enumerate(c.rows.tolist()):
                good[row] = {
                    name: col[k].item() if hasattr(col[k], "item") else col[k] for name, col in c.columns.items()
                }
            refused = [e.row for e in c.errors if e.row is not None]
            assert len(refused) == len(c.errors), "a refused CSV row without its row number"
            assert refused == sorted(refused), f"errors not in row order: {refused}"
            for row, e in zip(refused, c.errors, strict=True):
                bad[row] = sorted(((x.feature, x.reason) for x in e.errors), key=str)
            order += sorted(c.rows.tolist() + refused)
    except FileRejected:
        return "rejected"
    assert order == sorted(order), "rows are not in file order"
    return good, bad


def _read(body: bytes, chunk_rows: int, **policy: Any) -> Any:
    return served(csv_chunks(io.BytesIO(body), _coercer(**policy), chunk_rows), chunk_rows)


# --- generated files -----------------------------------------------------------------------


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
            lines.append(_line(row, header).replace(",", "\r", 1))  # a lone CR ends a line for both readers
        elif kind == 7:
            row[rng.choice(NUMERIC)] = rng.choice(["nan", "inf", "-Infinity"])
            lines.append(_line(row, header))
        else:
            row[rng.choice(STRICT)] = rng.choice(["weekly", "One_year", "été"])
            lines.append(_line(row, header))
    ending = rng.choice(["\n", "\r\n"])
    text = ending.join(lines) + rng.choice(["", ending, ending * 2])
    return (b"\xef\xbb\xbf" if rng.random() < 0.2 else b"") + text.encode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 60),
    oddity=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    chunk_rows=st.integers(1, 25),
    non_finite=st.sampled_from(["reject", "impute"]),
    extra_column=st.booleans(),
)
def test_every_generated_file_reads_as_the_reference_does(
    seed: int, n: int, oddity: float, chunk_rows: int, non_finite: str, extra_column: bool
) -> None:
    rng = random.Random(seed)
    header = [*NAMES, *(["comment"] if extra_column else [])]
    rng.shuffle(header)
    body = _file(rng, n, oddity, header)
    unknown = "ignore" if extra_column else "reject"
    assert _read(body, chunk_rows, non_finite=non_finite, unknown_features=unknown) == reference(
        body, non_finite, unknown
    )


@pytest.mark.parametrize(("chunk_rows", "block_bytes"), [(7, 1 << 20), (64, 4096), (8192, 1 << 20)])
def test_a_large_mostly_clean_file_reads_as_the_reference_does(chunk_rows: int, block_bytes: int) -> None:
    """Small blocks: pyarrow hands rows over in many batches, refused records in the middle of them."""
    body = _file(random.Random(chunk_rows), 3000, 0.01, list(reversed(NAMES)))
    want = reference(body)
    assert isinstance(want, tuple) and len(want[0]) > 2900 and len(want[1]) > 0
    got = served(csv_chunks(io.BytesIO(body), _coercer(), chunk_rows, block_bytes=block_bytes), chunk_rows)
    assert got == want


# --- rows written by hand ------------------------------------------------------------------

HEADER = list(reversed(NAMES))  # any column order
A = {
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
A_VALUES = {
    "tenure_months": 12.0,
    "monthly_charges": 70.5,
    "total_charges": 846.25,
    "support_calls": 1.0,
    "age": 40.0,
    "contract_type": "one_year",
    "payment_method": "credit_card",
    "internet_service": "dsl",
    "data_usage_gb": 10.5,
    "days_since_last_login": 3.0,
    "satisfaction_score": 4.0,
    "paperless_billing": 1.0,
}


def _csv(*rows: str) -> bytes:
    return "\n".join([",".join(HEADER), *rows]).encode() + b"\n"


def _row(**cells: str) -> str:
    return ",".join({**A, **cells}[h] for h in HEADER)


def test_specific_bad_rows_are_refused_with_their_reasons_and_good_rows_kept() -> None:
    body = _csv(
        _row(),  # row 0
        "",  # blank, not a row
        _row(age="nan"),  # row 1
        _row(contract_type="weekly"),  # row 2
        "1,2,3",  # row 3: the wrong number of fields
        _row(tenure_months="abc", payment_method="crypto"),  # row 4: only tenure is wrong
        _row(internet_service='"two\nlines"'),  # row 5: a quoted line break, one row over two lines
        _row(age="41.5", satisfaction_score=" 2 "),  # row 6: spaces around a number are fine
        "   ",  # spaces only, not a row
        _row() + ",",  # row 7: 13 fields
        _row(support_calls="1_000"),  # row 8: float() reads it, so the coercer does (pyarrow does not)
    )
    assert _read(body, 100) == (
        {
            0: A_VALUES,
            5: {**A_VALUES, "internet_service": "two\nlines"},
            6: {**A_VALUES, "age": 41.5, "satisfaction_score": 2.0},
            8: {**A_VALUES, "support_calls": 1000.0},
        },
        {
            1: [("age", "must be a finite number, got NaN or infinity")],
            2: [("contract_type", "is not a known category; expected one of month_to_month, one_year, two_year")],
            3: [(None, "has 3 values but the header has 12 columns")],
            4: [("tenure_months", "must be a number, got a string that is not one")],
            7: [(None, "has 13 values but the header has 12 columns")],
        },
    )


def test_a_column_pyarrow_cannot_cast_is_judged_cell_by_cell_naming_every_bad_row() -> None:
    """One " 7 " makes the cast of the column fail: every other cell is then read by the coercer alone."""
    body = _csv(_row(age=" 7 "), _row(age="x"), _row(age="8"), _row(age=""), _row(age="1e999"))
    good, bad = _read(body, 100)
    assert {row: values["age"] for row, values in good.items()} == {0: 7.0, 2: 8.0}
    assert bad == {
        1: [("age", "must be a number, got a string that is not one")],
        3: [("age", "must be a number, got a string that is not one")],
        4: [("age", "must be a finite number, got NaN or infinity")],
    }


def test_nan_is_imputed_with_the_training_mean_under_impute() -> None:
    body = _csv(_row(age="NaN", tenure_months="-inf"))
    assert _read(body, 10, non_finite="impute") == (
        {0: {**A_VALUES, "age": MEAN["age"], "tenure_months": MEAN["tenure_months"]}},
        {},
    )


def test_numbers_are_parsed_from_cells_whatever_numeric_strings_says() -> None:
    assert _read(_csv(_row(age="40.25")), 10, numeric_strings="reject") == ({0: {**A_VALUES, "age": 40.25}}, {})


def test_a_cell_with_a_400_digit_integer_is_a_row_error_not_a_crash() -> None:
    good, bad = _read(_csv(_row(age="1" + "0" * 400), _row()), 10)
    assert list(good) == [1]
    assert [(key, [f for f, _ in reasons]) for key, reasons in bad.items()] == [(0, ["age"])]


def test_a_chunk_whose_every_row_has_the_wrong_width_reports_each_row_not_a_crash() -> None:
    body = _csv(_row() + ",", _row() + ",")  # a trailing comma on every row: 13 fields under 12 columns
    why = [(None, "has 13 values but the header has 12 columns")]
    assert _read(body, 8192) == ({}, {0: why, 1: why})


def test_refused_records_go_with_the_chunk_of_the_rows_around_them() -> None:
    body = _csv("1,2", _row(), "1,2", "1,2", _row(), _row(), "1,2", "", "1,2", "1,2", "1,2")
    chunks = list(csv_chunks(io.BytesIO(body), _coercer(), 2))
    assert [(c.rows.tolist(), [e.row for e in c.errors]) for c in chunks] == [
        ([1, 4], [0, 2, 3]),
        ([5], []),
        ([], [6, 7]),
        ([], [8, 9]),
    ]


@pytest.mark.parametrize(
    ("body", "reason", "line"),
    [
        (b"\xff\xfe not utf-8\n", "the file is not valid UTF-8", None),
        (_csv(_row()) + b"1," * 11 + b"\xff\n", "the file is not valid UTF-8", None),
        (b"age,tenure_months\n1,2\n", "the header lacks feature column(s) monthly_charges, total_charges", 1),
        (",".join([*NAMES, "age"]).encode() + b"\n", "the header repeats column(s) age", 1),
        (",".join([*NAMES, "notes"]).encode() + b"\n", "the header has column(s) that are not features", 1),
        ((",".join(NAMES) + "\r" + _row() + "\r").encode(), "the header ends with a lone CR", 1),
    ],
    ids=["utf8_header", "utf8_row", "missing_columns", "repeated_column", "unknown_column", "lone_cr_header"],
)
def test_unreadable_files_are_rejected_with_the_reason(body: bytes, reason: str, line: int | None) -> None:
    with pytest.raises(FileRejected) as info:
        list(csv_chunks(io.BytesIO(body), _coercer(), 4))
    assert info.value.reason.startswith(reason), info.value.reason
    assert info.value.line == line


def test_a_row_longer_than_a_csv_row_may_be_costs_only_itself_with_its_row_number() -> None:
    """A 20 MB line among 20,000 good rows (the issue's file): the good rows are all read; the long one is row
    10,000 with the reason. A long line whose quoted value has a line break in it is cut to its record's end."""
    long_cell = "x" * (20 << 20)
    rows = [_row(age=str(20 + i % 50)) for i in range(20_000)]
    body = _csv(*rows[:10_000], _row(internet_service=long_cell), *rows[10_000:])
    good, bad = _read(body, 8192)
    want = "is longer than 4 MiB, the most a CSV row may hold: it was not read"
    assert bad == {10_000: [(None, want)]}
    assert sorted(good) == [*range(10_000), *range(10_001, 20_001)]
    assert good[10_001] == {**A_VALUES, "age": 20.0}  # the row after it: 10,000 % 50 = 0, so age 20

    within = _row(internet_service="z" * (3 << 20))  # under the limit: read as a row like any other
    good, bad = _read(_csv(_row(), within, _row()), 8192)
    assert bad == {} and sorted(good) == [0, 1, 2] and len(good[1]["internet_service"]) == 3 << 20

    quoted = _row(internet_service='"' + long_cell + '\nstill the same value"')
    good, bad = _read(_csv(_row(), quoted, _row(age="33")), 8192)
    assert bad == {1: [(None, want)]} and sorted(good) == [0, 2] and good[2]["age"] == 33.0


def test_a_long_line_inside_a_quoted_value_is_not_cut_and_the_file_is_refused_as_before() -> None:
    """It starts inside quotes (the value's first line is short): cutting it would shift every quote after it."""
    value = '"short first line\n' + "y" * (9 << 20) + '"'
    with pytest.raises(FileRejected) as info:
        list(csv_chunks(io.BytesIO(_csv(_row(), _row(internet_service=value))), _coercer(), 4))
    assert info.value.reason.startswith("malformed CSV: a row is longer than 4 MiB"), info.value.reason


@pytest.mark.parametrize(
    "body",
    [b"", ",".join(NAMES).encode(), ",".join(NAMES).encode() + b"\n", _csv("", " ", "")],
    ids=["empty", "header_without_line_break", "header", "blank"],
)
def test_files_without_rows_give_no_rows(body: bytes) -> None:
    assert _read(body, 4) == ({}, {})


def test_a_byte_order_mark_and_rows_ending_in_a_lone_cr_are_read() -> None:
    body = b"\xef\xbb\xbf" + (",".join(HEADER) + "\n" + _row() + "\r" + _row(age="41") + "\r").encode()
    assert _read(body, 10) == ({0: A_VALUES, 1: {**A_VALUES, "age": 41.0}}, {})


def test_csv_is_refused_for_models_with_array_inputs() -> None:
    digits = Coercer(Signature.from_dict(zoo.manifest("digits")["signature"]), CoercePolicy())
    with pytest.raises(FileRejected) as info:
        check_csv_model(digits)
    assert info.value.reason == (
        "a CSV holds one value per cell, but this model takes array input(s) image (uint8 [28, 28, 1]): "
        "send JSON Lines (one request row per line) or .npy"
    )
    check_csv_model(_coercer())  # every churn feature is a scalar: no refusal


def test_the_text_coercer_only_changes_the_numeric_strings_policy() -> None:
    base = Coercer(SIGNATURE, CoercePolicy(numeric_strings="reject", non_finite="impute", max_batch_size=7))
    text = text_coercer(base)
    assert text.policy == CoercePolicy(numeric_strings="accept", non_finite="impute", max_batch_size=7)
    assert text.signature is SIGNATURE

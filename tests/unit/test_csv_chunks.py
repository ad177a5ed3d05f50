"""S3 CSV files -> chunks: checked against a reference reader written here, and against rows written by hand.

The reference reader uses only the standard library (`csv.reader` over `TextIOWrapper`, `float()`,
the vocabularies in the committed `preprocessing.json`) and its own rules for what a row is and
why it is refused. It shares no code with `handler/sources`.
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
from handler.sources.csv_chunks import check_csv_model, csv_chunks, text_coercer
from handler.sources.file_chunks import Chunk, FileRejected
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


def _judge(rec: list[str], index: dict[str, int], width: int, non_finite: str) -> tuple[dict[str, Any], list[Any]]:
    """One record -> (values by feature, [(feature, reason)]): the rules as the README states them."""
    if len(rec) != width:
        return {}, [(None, f"has {len(rec)} values but the header has {width} columns")]
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
    """(good rows, bad rows) as [(row, line, values)] and [(row, line, sorted reasons)]; or ("rejected", line)."""
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
    records = csv.reader(text)
    good: list[Any] = []
    bad: list[Any] = []
    try:
        header = next(records, None)
        if header is None:
            return good, bad
        names = [h.strip() for h in header]
        if len(set(names)) != len(names) or any(n not in names for n in NAMES):
            return ("rejected", 1)
        if unknown == "reject" and any(n not in NAMES for n in names):
            return ("rejected", 1)
        index = {n: names.index(n) for n in NAMES}
        width, row, end = len(header), 0, records.line_num
        for rec in records:
            start, end = end + 1, records.line_num
            if not rec or (len(rec) == 1 and width > 1 and not rec[0].strip()):
                continue  # a blank line is no row
            values, reasons = _judge(rec, index, width, non_finite)
            if reasons:
                bad.append((row, start, sorted(reasons, key=str)))
            else:
                good.append((row, start, values))
            row += 1
    except UnicodeDecodeError:
        return ("rejected", None)
    except csv.Error:
        return ("rejected", records.line_num)
    return good, bad


def served(chunks: Iterator[Chunk], chunk_rows: int) -> Any:
    """Chunks in the reference's form; a rejected file as ("rejected", line)."""
    good: list[Any] = []
    bad: list[Any] = []
    try:
        for c in chunks:
            assert len(c.rows) + len(c.errors) <= chunk_rows
            for k, row in enumerate(c.rows.tolist()):
                assert c.lines is not None
                good.append((row, int(c.lines[k]), {name: col[k].item() if hasattr(col[k], "item") else col[k]
                                                    for name, col in c.columns.items()}))  # fmt: skip
            for e in c.errors:
                bad.append((e.row, e.line, sorted(((x.feature, x.reason) for x in e.errors), key=str)))
    except FileRejected as exc:
        return ("rejected", exc.line)
    return good, bad


def _both_paths(body: bytes, chunk_rows: int, **policy: Any) -> list[Any]:
    coercer = _coercer(**policy)
    return [served(csv_chunks(io.BytesIO(body), coercer, chunk_rows, fast=fast), chunk_rows) for fast in (True, False)]


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


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 60),
    oddity=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    chunk_rows=st.integers(1, 25),
    non_finite=st.sampled_from(["reject", "impute"]),
    extra_column=st.booleans(),
)
def test_both_paths_read_every_file_as_the_reference_does(
    seed: int, n: int, oddity: float, chunk_rows: int, non_finite: str, extra_column: bool
) -> None:
    rng = random.Random(seed)
    header = [*NAMES, *(["comment"] if extra_column else [])]
    rng.shuffle(header)
    body = _file(rng, n, oddity, header)
    unknown = "ignore" if extra_column else "reject"
    want = reference(body, non_finite, unknown)
    fast, slow = _both_paths(body, chunk_rows, non_finite=non_finite, unknown_features=unknown)
    assert fast == want, "the fast path differs from the reference reader"
    assert slow == want, "the csv.reader path differs from the reference reader"


@pytest.mark.parametrize("chunk_rows", [7, 64, 8192])
def test_a_large_mostly_clean_file_reads_as_the_reference_does(chunk_rows: int) -> None:
    body = _file(random.Random(chunk_rows), 3000, 0.01, list(reversed(NAMES)))
    want = reference(body)
    assert isinstance(want, tuple) and len(want[0]) > 2900 and len(want[1]) > 0
    assert _both_paths(body, chunk_rows) == [want, want]


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


@pytest.mark.parametrize("fast", [True, False])
def test_specific_bad_rows_are_rejected_with_their_reasons_and_good_rows_kept(fast: bool) -> None:
    body = _csv(
        _row(),  # line 2, row 0
        "",  # line 3: blank, not a row
        _row(age="nan"),  # line 4, row 1
        _row(contract_type="weekly"),  # line 5, row 2
        "1,2,3",  # line 6, row 3
        _row(tenure_months="abc", payment_method="crypto"),  # line 7, row 4: only tenure is wrong
        _row(internet_service='"two\nlines"'),  # lines 8-9, row 5: a quoted line break
        _row(age="41.5", satisfaction_score=" 2 "),  # line 10, row 6
    )
    got = served(csv_chunks(io.BytesIO(body), _coercer(), 100, fast=fast), 100)
    assert got == (
        [
            (0, 2, A_VALUES),
            (5, 8, {**A_VALUES, "internet_service": "two\nlines"}),
            (6, 10, {**A_VALUES, "age": 41.5, "satisfaction_score": 2.0}),
        ],
        [
            (1, 4, [("age", "must be a finite number, got NaN or infinity")]),
            (2, 5, [("contract_type", "is not a known category; expected one of month_to_month, one_year, two_year")]),
            (3, 6, [(None, "has 3 values but the header has 12 columns")]),
            (4, 7, [("tenure_months", "must be a number, got a string that is not one")]),
        ],
    )


def test_nan_is_imputed_with_the_training_mean_under_impute() -> None:
    body = _csv(_row(age="NaN", tenure_months="-inf"))
    got = served(csv_chunks(io.BytesIO(body), _coercer(non_finite="impute"), 10), 10)
    assert got == ([(0, 2, {**A_VALUES, "age": MEAN["age"], "tenure_months": MEAN["tenure_months"]})], [])


def test_numbers_are_parsed_from_cells_whatever_numeric_strings_says() -> None:
    body = _csv(_row(age="40.25"))
    got = served(csv_chunks(io.BytesIO(body), _coercer(numeric_strings="reject"), 10), 10)
    assert got == ([(0, 2, {**A_VALUES, "age": 40.25})], [])


def test_a_cell_with_a_400_digit_integer_is_a_row_error_not_a_crash() -> None:
    body = _csv(_row(age="1" + "0" * 400), _row())
    good, bad = served(csv_chunks(io.BytesIO(body), _coercer(), 10), 10)
    assert [(r, line) for r, line, _ in good] == [(1, 3)]
    assert [(r, line, [f for f, _ in reasons]) for r, line, reasons in bad] == [(0, 2, ["age"])]


@pytest.mark.parametrize("fast", [True, False])
def test_a_chunk_whose_every_row_has_the_wrong_width_reports_each_row_not_a_crash(fast: bool) -> None:
    body = _csv(_row() + ",", _row() + ",")  # a trailing comma on every row: 13 fields under 12 columns
    got = served(csv_chunks(io.BytesIO(body), _coercer(), 8192, fast=fast), 8192)
    why = [(None, "has 13 values but the header has 12 columns")]
    assert got == ([], [(0, 2, why), (1, 3, why)])


@pytest.mark.parametrize(
    ("body", "reason", "line"),
    [
        (b"\xff\xfe not utf-8\n", "the file is not valid UTF-8", None),
        (_csv(_row()) + b"1," * 11 + b"\xff\n", "the file is not valid UTF-8", None),
        (
            _csv(_row()) + b"1," * 11 + b"x" * (csv.field_size_limit() + 1) + b"\n",
            "malformed CSV: field larger than field limit",
            3,
        ),
        (b"age,tenure_months\n1,2\n", "the header lacks feature column(s) monthly_charges, total_charges", 1),
        (",".join([*NAMES, "age"]).encode() + b"\n", "the header repeats column(s) age", 1),
        (",".join([*NAMES, "notes"]).encode() + b"\n", "the header has column(s) that are not features", 1),
    ],
    ids=["utf8_header", "utf8_row", "field_limit", "missing_columns", "repeated_column", "unknown_column"],
)
def test_unreadable_files_are_rejected_with_the_reason(body: bytes, reason: str, line: int | None) -> None:
    assert reference(body)[0] == "rejected"
    for fast in (True, False):
        with pytest.raises(FileRejected) as info:
            list(csv_chunks(io.BytesIO(body), _coercer(), 4, fast=fast))
        assert info.value.reason.startswith(reason), info.value.reason
        assert info.value.line == line


@pytest.mark.parametrize("body", [b"", ",".join(NAMES).encode(), _csv("", " ", "")], ids=["empty", "header", "blank"])
def test_files_without_rows_give_no_rows(body: bytes) -> None:
    assert served(csv_chunks(io.BytesIO(body), _coercer(), 4), 4) == ([], [])


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

"""Parquet files -> chunks (and the Arrow column rules under them); files built here, expectations by hand."""

from __future__ import annotations

import decimal
import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.core.coerce import CoercePolicy, Coercer
from handler.core.signature import Signature, TensorSpec
from handler.formats import parquet as parquet_format
from handler.formats.base import Chunk, FileRejected
from handler.formats.parquet import open_parquet, parquet_chunks

OUT = (TensorSpec("output_0", "float32", (1,)),)
TAB = (
    TensorSpec("age", "float64"),
    TensorSpec("plan", "string", vocabulary=frozenset({"basic", "pro"})),
    TensorSpec("city", "string"),
)
TABULAR = Coercer(Signature(TAB, (TensorSpec("features", "float32", (4,)),), OUT), CoercePolicy())
ARRAYS = (TensorSpec("user", "float32", (2,)), TensorSpec("item_id", "int32", index_range=(0, 10)))
TWO_INPUTS = Coercer(Signature(ARRAYS, ARRAYS, OUT, "dict"), CoercePolicy())
GRID_SPEC = TensorSpec("grid", "uint8", (2, 2))
GRID = Coercer(Signature((GRID_SPEC,), (GRID_SPEC,), OUT), CoercePolicy())


def _parquet(table: pa.Table, row_group_size: int | None = None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def _read(data: bytes, coercer: Coercer, chunk_rows: int = 100) -> list[Chunk]:
    return list(parquet_chunks(open_parquet(io.BytesIO(data)), coercer, chunk_rows))


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _flat(chunks: list[Chunk]) -> tuple[list[Any], list[Any]]:
    good = [
        (row, {n: _plain(col[k]) for n, col in c.columns.items()})
        for c in chunks
        for k, row in enumerate(c.rows.tolist())
    ]
    bad = [(e.row, [(x.feature, x.reason) for x in e.errors]) for c in chunks for e in c.errors]
    assert all(c.lines is None and all(e.line is None for e in c.errors) for c in chunks), "Parquet has no lines"
    return good, bad


def test_typed_columns_are_read_in_row_order_across_row_groups_and_chunks() -> None:
    n = 10
    table = pa.table(
        {
            "city": [f"c{i % 3}" for i in range(n)],
            "age": pa.array(np.arange(n), pa.int16()),  # an integer column for a float feature: exact
            "plan": pa.array(["basic", "pro"] * 5).dictionary_encode(),  # as pandas writes categories
        }
    )
    chunks = _read(_parquet(table, row_group_size=4), TABULAR, chunk_rows=3)
    assert [row for c in chunks for row in c.rows.tolist()] == list(range(n))
    assert max(len(c.rows) for c in chunks) == 3
    good, bad = _flat(chunks)
    assert bad == []
    assert good[5] == (5, {"age": 5.0, "plan": "pro", "city": "c2"})
    assert chunks[0].columns["age"].dtype == np.float64


def test_bad_cells_are_named_per_row_and_the_rest_are_kept() -> None:
    table = pa.table(
        {
            "age": pa.array([1.5, None, float("nan"), 4.0, float("inf")], pa.float64()),
            "plan": ["basic", "weekly", "pro", None, "pro"],
            "city": ["a", "b", "c", "d", "e"],
        }
    )
    good, bad = _flat(_read(_parquet(table), TABULAR))
    assert good == [(0, {"age": 1.5, "plan": "basic", "city": "a"})]
    assert bad == [
        (1, [("age", "must be a number, got null"), ("plan", "is not a known category; expected one of basic, pro")]),
        (2, [("age", "must be a finite number, got NaN or infinity")]),
        (3, [("plan", 'must be a string (or {"b64": ...} for bytes), got null')]),
        (4, [("age", "must be a finite number, got NaN or infinity")]),
    ]


def test_numbers_stored_as_text_follow_numeric_strings() -> None:
    table = pa.table({"age": ["40", " 41 ", "x"], "plan": ["pro"] * 3, "city": ["a"] * 3})
    good, bad = _flat(_read(_parquet(table), TABULAR))
    assert [(row, values["age"]) for row, values in good] == [(0, 40.0), (1, 41.0)]
    assert bad == [(2, [("age", "must be a number, got a string that is not one")])]
    strict = Coercer(TABULAR.signature, CoercePolicy(numeric_strings="reject"))
    _, refused = _flat(_read(_parquet(table), strict))
    assert [row for row, _ in refused] == [0, 1, 2]
    assert refused[0][1] == [("age", "must be a number, got a string (NUMERIC_STRINGS=reject)")]


def test_decimal_columns_are_numbers() -> None:
    table = pa.table(
        {
            "age": pa.array([decimal.Decimal("40.25"), decimal.Decimal("7")], pa.decimal128(6, 2)),
            "plan": ["pro", "basic"],
            "city": ["a", "b"],
        }
    )
    good, _ = _flat(_read(_parquet(table), TABULAR))
    assert [values["age"] for _, values in good] == [40.25, 7.0]


def test_list_columns_feed_array_inputs_and_wrong_shapes_are_named() -> None:
    table = pa.table(
        {
            "user": pa.array([[0.5, 1.5], [1.0], [2.0, 3.0], None], pa.list_(pa.float64())),
            "item_id": pa.array([3, 4, 10, 2], pa.int64()),
        }
    )
    good, bad = _flat(_read(_parquet(table), TWO_INPUTS))
    assert good == [(0, {"user": [0.5, 1.5], "item_id": 3})]
    assert bad == [
        (1, [("user", "has 1 entries on axis 1, expected 2")]),
        (2, [("item_id", "is an id outside this input's range 0..9")]),
        (3, [("user", "must be an array of 2 values, got null")]),
    ]


def test_fixed_size_list_columns_are_read_as_one_array() -> None:
    grids = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    nested = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(pa.array(grids.reshape(-1), pa.int32()), 2), 2
    )
    good, bad = _flat(_read(_parquet(pa.table({"grid": nested})), GRID))
    assert bad == []
    assert good == [(i, {"grid": grids[i].tolist()}) for i in range(3)]
    too_big = pa.table({"grid": pa.array([[[1, 2], [3, 300]]], pa.list_(pa.list_(pa.int32())))})
    _, refused = _flat(_read(_parquet(too_big), GRID))
    assert refused == [(0, [("grid", "[1][1] is outside uint8's range 0..255")])]


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"age": [1.0], "plan": ["pro"]}, "the Parquet file lacks feature column(s) city; it must have one column"),
        (
            {"age": [1.0], "plan": ["pro"], "city": ["a"], "label": [1]},
            "the Parquet file has column(s) that are not features of this model: label (drop them, or set "
            "UNKNOWN_FEATURES=ignore)",
        ),
    ],
    ids=["missing", "unknown"],
)
def test_columns_that_do_not_fit_the_features_reject_the_file(columns: dict[str, Any], reason: str) -> None:
    with pytest.raises(FileRejected) as info:
        _read(_parquet(pa.table(columns)), TABULAR)
    assert info.value.reason.startswith(reason), info.value.reason


def test_unknown_columns_are_not_read_under_unknown_features_ignore() -> None:
    lenient = Coercer(TABULAR.signature, CoercePolicy(unknown_features="ignore"))
    table = pa.table({"label": [[1, 2]], "age": [1.0], "plan": ["pro"], "city": ["a"]})
    good, _ = _flat(_read(_parquet(table), lenient))
    assert good == [(0, {"age": 1.0, "plan": "pro", "city": "a"})]


def test_bytes_that_are_not_parquet_reject_the_file() -> None:
    with pytest.raises(FileRejected, match="not a readable Parquet file: Parquet magic bytes not found"):
        open_parquet(io.BytesIO(b"age,plan,city\n1,pro,a\n"))


def test_a_damaged_page_rejects_the_file_naming_the_rows_read() -> None:
    table = pa.table({"age": np.arange(40_000, dtype=np.float64), "plan": ["pro"] * 40_000, "city": ["a"] * 40_000})
    data = bytearray(_parquet(table, row_group_size=20_000))
    second_group = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(1).column(0).data_page_offset
    data[second_group + 40 : second_group + 400] = b"\x00" * 360
    with pytest.raises(FileRejected, match="the Parquet file cannot be read past row 20000"):
        _read(bytes(data), TABULAR, chunk_rows=20_000)


def test_a_failed_read_is_raised_as_it_is_so_lambda_retries() -> None:
    data = _parquet(pa.table({"age": [1.0], "plan": ["pro"], "city": ["a"]}))

    class Dropping(io.BytesIO):
        dropped = False

        def read(self, size: int | None = -1) -> bytes:
            if self.dropped:
                raise ConnectionResetError("the connection dropped")
            return super().read(size)

    source = Dropping(data)
    parquet = open_parquet(source)  # the footer is read; the row group's pages are not yet
    source.dropped = True
    with pytest.raises(ConnectionResetError):
        list(parquet_chunks(parquet, TABULAR, 100))


# --- what the values take once decompressed --------------------------------------------------------


def test_a_decompression_bomb_is_refused_from_the_footer_before_any_value_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read limit counts compressed bytes: a few KB of zstd holding one huge string took a GiB to read."""
    huge = "x" * (parquet_format.DECOMPRESSED_CHUNK_BYTES + (1 << 20))
    table = pa.table({"age": [40.0], "plan": ["pro"], "city": [huge]})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    del table, huge
    data = buf.getvalue()
    assert len(data) < 64 << 10, len(data)  # a thousand times smaller than what it holds

    parquet = open_parquet(io.BytesIO(data), TABULAR)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("values were read before the file was judged")

    monkeypatch.setattr(parquet, "iter_batches", never)
    before = pa.total_allocated_bytes()
    with pytest.raises(FileRejected) as refused:
        list(parquet_chunks(parquet, TABULAR, chunk_rows=100))
    assert pa.total_allocated_bytes() - before < 1 << 20
    reason = refused.value.reason
    assert reason.startswith("row group 0 of the Parquet file decompresses to 65.0 MiB of feature values a row"), reason
    assert "column 'city'" in reason and "over the 64.0 MiB a row may take" in reason, reason
    assert refused.value.feature == "city"


def test_values_counted_past_the_limit_are_refused_though_their_pages_are_small() -> None:
    """Parquet's "uncompressed" is still encoded: a dictionary with run lengths holds 9 million zeros in 114 bytes."""
    n = 9_000_000  # 72 MB of doubles in one row, for an input that takes two
    user = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), pa.array(np.zeros(n)))
    data = _parquet(pa.table({"user": user, "item_id": pa.array([3], pa.int64())}))
    del user
    assert len(data) < 16 << 10, len(data)
    with pytest.raises(FileRejected) as refused:
        _read(data, TWO_INPUTS)
    assert refused.value.feature == "user" and "decompresses to 68.7 MiB" in refused.value.reason, refused.value


def test_large_rows_are_read_in_fewer_rows_a_chunk_and_one_too_large_refuses_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parquet_format, "DECOMPRESSED_CHUNK_BYTES", 4096)
    n = 10
    table = pa.table(
        {"age": np.arange(n, dtype=np.float64), "plan": ["pro"] * n, "city": [f"{i}" * 1000 for i in range(n)]}
    )
    chunks = _read(_parquet(table), TABULAR, chunk_rows=100)
    assert [row for c in chunks for row in c.rows.tolist()] == list(range(n))
    assert max(len(c.rows) for c in chunks) == 3, [len(c.rows) for c in chunks]  # ~1 KiB a row, 4 KiB a chunk
    assert _flat(chunks)[1] == []

    wide = pa.table({"age": [1.0, 2.0], "plan": ["pro", "pro"], "city": ["a", "b" * 5000]})
    with pytest.raises(FileRejected, match=r"^row group 1 of the Parquet file decompresses to .* column 'city'"):
        _read(_parquet(wide, row_group_size=1), TABULAR)


def test_the_decompressed_limit_is_eight_times_the_s3_job_s_chunk_budget() -> None:
    from handler.triggers.s3 import chunks as s3_chunks

    assert parquet_format.DECOMPRESSED_CHUNK_BYTES == 8 * s3_chunks.CHUNK_BYTES

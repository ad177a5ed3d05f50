"""The predictions objects written back: CSV, JSON Lines and Parquet files; expectations written by hand."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from handler.core.signature import TensorSpec
from handler.formats.csv import CsvPredictions
from handler.formats.jsonl import prediction_lines
from handler.formats.parquet import ParquetPredictions

# --- JSON Lines ----------------------------------------------------------------------------


def test_prediction_lines_hold_one_instance_answer_each() -> None:
    rows, lines = np.array([10, 11]), np.array([12, 14])
    out = {"output_0": np.array([[0.5], [0.25]], dtype=np.float32)}
    assert prediction_lines(rows, lines, out, ["output_0"]) == (
        b'{"row": 10, "line": 12, "prediction": [0.5]}\n{"row": 11, "line": 14, "prediction": [0.25]}\n'
    )
    assert prediction_lines(rows, None, out, ["output_0"]) == (
        b'{"row": 10, "prediction": [0.5]}\n{"row": 11, "prediction": [0.25]}\n'
    )


def test_prediction_lines_widen_float32_exactly_and_are_json() -> None:
    out = {"output_0": np.array([[0.1, 2.0, 1e-7]], dtype=np.float32)}
    text = prediction_lines(np.array([0]), np.array([2]), out, ["output_0"])
    # float32(0.1) widened to float64 is 0.10000000149011612, the digits an HTTP answer has (Python's repr of
    # the widened value). pyarrow writes the same shortest digits, with 2.0 as "2" and "e-7" for Python's "e-07".
    assert text == b'{"row": 0, "line": 2, "prediction": [0.10000000149011612, 2, 1.0000000116860974e-7]}\n'
    widened = [float(v) for v in out["output_0"][0]]
    assert json.loads(text) == {"row": 0, "line": 2, "prediction": widened}


def test_prediction_lines_of_several_outputs_hold_an_object_per_row() -> None:
    out = {"click": np.array([[0.5], [0.75]], dtype=np.float32), "score": np.array([[1.5], [-2.0]], dtype=np.float32)}
    text = prediction_lines(np.array([0, 1]), np.array([1, 2]), out, ["click", "score"])
    assert [json.loads(line) for line in text.splitlines()] == [
        {"row": 0, "line": 1, "prediction": {"click": [0.5], "score": [1.5]}},
        {"row": 1, "line": 2, "prediction": {"click": [0.75], "score": [-2.0]}},
    ]


def test_prediction_lines_nest_an_examples_shape_and_write_ints_and_booleans_as_json() -> None:
    rows = np.array([0, 1])
    grid = {"o": np.arange(12, dtype=np.float32).reshape(2, 3, 2)}
    assert prediction_lines(rows, None, grid, ["o"]) == (
        b'{"row": 0, "prediction": [[0, 1], [2, 3], [4, 5]]}\n{"row": 1, "prediction": [[6, 7], [8, 9], [10, 11]]}\n'
    )
    assert prediction_lines(rows, None, {"o": np.array([3, -4], dtype=np.int32)}, ["o"]) == (
        b'{"row": 0, "prediction": 3}\n{"row": 1, "prediction": -4}\n'
    )
    flags = {"o": np.array([[True, False], [False, True]])}
    assert prediction_lines(rows, None, flags, ["o"]) == (
        b'{"row": 0, "prediction": [true, false]}\n{"row": 1, "prediction": [false, true]}\n'
    )


def test_text_outputs_are_written_by_json_dumps() -> None:
    out = {"label": np.array([b"caf\xc3\xa9", b"\xff"], dtype=object)}
    assert prediction_lines(np.array([0, 1]), None, out, ["label"]) == (
        b'{"row": 0, "prediction": "caf\xc3\xa9"}\n{"row": 1, "prediction": {"b64": "/w=="}}\n'
    )


def test_no_rows_write_nothing() -> None:
    out = {"output_0": np.zeros((0, 1), dtype=np.float32)}
    assert prediction_lines(np.zeros(0, dtype=np.int64), None, out, ["output_0"]) == b""


class Collect:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buffer.write(data)


# --- CSV -----------------------------------------------------------------------------------


def test_csv_predictions_have_a_header_and_a_column_per_value() -> None:
    specs = (
        TensorSpec("p", "float32", (1,)),
        TensorSpec("scores", "float32", (3,)),
        TensorSpec("grid", "int32", (2, 2)),
        TensorSpec("flag", "bool", ()),
    )
    sink = Collect()
    writer = CsvPredictions(sink, specs)
    writer.write(
        np.array([3, 9]),
        None,
        {
            "p": np.array([[0.1], [2.0]], dtype=np.float32),
            "scores": np.array([[0.5, 0.25, 0.25], [1, 0, 0]], dtype=np.float32),
            "grid": np.arange(8, dtype=np.int32).reshape(2, 2, 2),
            "flag": np.array([True, False]),
        },
    )
    writer.write(
        np.array([10]),
        None,
        {
            "p": np.array([[1e-7]], dtype=np.float32),
            "scores": np.zeros((1, 3), dtype=np.float32),
            "grid": np.full((1, 2, 2), -1, dtype=np.int32),
            "flag": np.array([True]),
        },
    )
    writer.close()
    # float32 widened to float64, in the shortest digits that give it back (as JSON Lines and HTTP answers have
    # them: float32(0.1) is 0.10000000149011612), "2" for 2.0, "e-7" for Python's "e-07"; pyarrow quotes names.
    assert sink.buffer.getvalue().decode() == (
        '"row","p","scores[0]","scores[1]","scores[2]","grid[0][0]","grid[0][1]","grid[1][0]","grid[1][1]","flag"\n'
        "3,0.10000000149011612,0.5,0.25,0.25,0,1,2,3,true\n"
        "9,2,1,0,0,4,5,6,7,false\n"
        "10,1.0000000116860974e-7,0,0,0,-1,-1,-1,-1,true\n"
    )


def test_csv_predictions_of_text_and_free_shapes_hold_text_and_json() -> None:
    specs = (
        TensorSpec("label", "string", ()),
        TensorSpec("tags", "string", (2,)),
        TensorSpec("seq", "float32", (None,)),
    )
    sink = Collect()
    writer = CsvPredictions(sink, specs)
    outputs = {
        "label": np.array([b"cat", b'say "hi", then go'], dtype=object),
        "tags": np.array([[b"a", b"b"], [b"c", b"\xff"]], dtype=object),
        "seq": np.array([[1.5, 2.0], [0.0, -1.0]], dtype=np.float32),
    }
    writer.write(np.array([0, 1]), None, outputs)
    writer.close()
    records = list(csv.reader(io.StringIO(sink.buffer.getvalue().decode(), newline="")))
    assert records == [
        ["row", "label", "tags", "seq"],
        ["0", "cat", '["a", "b"]', "[1.5, 2.0]"],
        # Bytes that are not UTF-8 are written as {"b64": ...}, as an HTTP answer gives them.
        ["1", 'say "hi", then go', '["c", {"b64": "/w=="}]', "[0.0, -1.0]"],
    ]


def test_a_csv_output_of_no_rows_is_its_header() -> None:
    sink = Collect()
    CsvPredictions(sink, (TensorSpec("output_0", "float32", (1,)),)).close()
    assert sink.buffer.getvalue() == b'"row","output_0"\n'


def test_a_discarded_csv_writer_writes_nothing_more() -> None:
    sink = Collect()
    writer = CsvPredictions(sink, (TensorSpec("output_0", "float32", (1,)),))
    writer.discard()
    writer.discard()  # a second discard, or one after close, is a no-op
    assert sink.buffer.getvalue() == b'"row","output_0"\n', "more than the header reached the sink"


# --- Parquet -------------------------------------------------------------------------------


SPECS = (TensorSpec("click", "float32", (1,)), TensorSpec("scores", "float32", (3,)), TensorSpec("id", "int64", ()))


def _two_chunks() -> bytes:
    sink = Collect()
    writer = ParquetPredictions(sink, SPECS)
    writer.write(
        np.array([0, 2]),
        None,
        {
            "click": np.array([[0.5], [0.25]], dtype=np.float32),
            "scores": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32),
            "id": np.array([7, 8]),
        },
    )
    writer.write(
        np.array([3]),
        None,
        {
            "click": np.array([[1.0]], dtype=np.float32),
            "scores": np.zeros((1, 3), dtype=np.float32),
            "id": np.array([9]),
        },
    )
    writer.close()
    return sink.buffer.getvalue()


def test_parquet_predictions_hold_the_row_and_one_column_per_output() -> None:
    data = _two_chunks()
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.num_row_groups == 2, "one row group per chunk"
    table = parquet.read()
    assert table.schema == pa.schema(
        [("row", pa.int64()), ("click", pa.float32()), ("scores", pa.list_(pa.float32(), 3)), ("id", pa.int64())]
    )
    assert table.to_pylist() == [
        {"row": 0, "click": 0.5, "scores": [1.0, 2.0, 3.0], "id": 7},
        {"row": 2, "click": 0.25, "scores": [4.0, 5.0, 6.0], "id": 8},
        {"row": 3, "click": 1.0, "scores": [0.0, 0.0, 0.0], "id": 9},
    ]


def test_the_same_answers_give_the_same_parquet_bytes() -> None:
    """A retried event rewrites the object: its bytes must not depend on when it was written."""
    assert _two_chunks() == _two_chunks()


def test_a_parquet_output_of_no_rows_is_a_valid_file_with_the_schema() -> None:
    sink = Collect()
    ParquetPredictions(sink, SPECS).close()
    table = pq.read_table(io.BytesIO(sink.buffer.getvalue()))
    assert table.num_rows == 0 and table.column_names == ["row", "click", "scores", "id"]


def test_a_discarded_parquet_writer_writes_nothing_more() -> None:
    sink = Collect()
    writer = ParquetPredictions(sink, SPECS)
    before = sink.buffer.tell()
    writer.discard()
    assert sink.buffer.tell() == before, "the footer of an abandoned file reached the sink"
    writer.discard()  # a second discard, or one after close, is a no-op

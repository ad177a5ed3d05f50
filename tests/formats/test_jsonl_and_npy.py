"""JSON Lines and .npy files -> chunks; expectations written by hand (the outputs written back: test_outputs.py)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from handler.core.coerce import CoercePolicy, Coercer
from handler.core.json_depth import MAX_JSON_DEPTH
from handler.core.signature import Signature, TensorSpec
from handler.formats.base import Chunk, FileRejected
from handler.formats.jsonl import jsonl_chunks
from handler.formats.npy import npy_chunks, npy_layout

OUT = (TensorSpec("output_0", "float32", (1,)),)
IMAGE_SPEC = TensorSpec("image", "uint8", (2, 2))
IMAGE = Coercer(Signature((IMAGE_SPEC,), (IMAGE_SPEC,), OUT), CoercePolicy())
TAB_FEATURES = (TensorSpec("age", "float64"), TensorSpec("plan", "string"), TensorSpec("score", "float64"))
TABULAR = Coercer(Signature(TAB_FEATURES, (TensorSpec("features", "float32", (4,)),), OUT), CoercePolicy())
TWO = (TensorSpec("user", "float32", (2,)), TensorSpec("item_id", "int32", index_range=(0, 10)))
TWO_INPUTS = Coercer(Signature(TWO, TWO, OUT, "dict"), CoercePolicy())
ROW_FORMS = "a row is an object of features, a value, or an array of values"


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _flat(chunks: list[Chunk]) -> tuple[list[Any], list[Any]]:
    good = [
        (row, None if c.lines is None else int(c.lines[k]), {n: _plain(col[k]) for n, col in c.columns.items()})
        for c in chunks
        for k, row in enumerate(c.rows.tolist())
    ]
    bad = [(e.row, e.line, [(x.feature, x.reason) for x in e.errors]) for c in chunks for e in c.errors]
    return good, bad


# --- JSON Lines ----------------------------------------------------------------------------


def test_json_lines_keep_good_rows_in_place_and_name_every_bad_line() -> None:
    text = "\n".join(
        [
            '{"user": [0.5, 1.5], "item_id": 3}',  # line 1, row 0
            "",  # line 2: blank, not a row
            '{"user": [1, 2], "item_id": 10}',  # line 3, row 1: id 10 is outside Embedding(10)
            "{not json",  # line 4, row 2
            '{"item_id": 4, "user": [2.5, -1]}',  # line 5, row 3
        ]
    )
    chunks = list(jsonl_chunks(io.BytesIO(text.encode()), TWO_INPUTS, chunk_rows=2))
    good, bad = _flat(chunks)
    assert good == [
        (0, 1, {"user": [0.5, 1.5], "item_id": 3}),
        (3, 5, {"user": [2.5, -1.0], "item_id": 4}),
    ]
    assert [(row, line) for row, line, _ in bad] == [(1, 3), (2, 4)]
    assert bad[0][2] == [("item_id", "is an id outside this input's range 0..9")]
    [(feature, reason)] = bad[1][2]
    assert feature is None and reason.startswith("not valid JSON")


def test_json_lines_take_ordered_rows_for_tabular_models() -> None:
    text = '[40, "pro", 1.5]\n{"score": 2.5, "plan": "basic", "age": 71}\n'
    good, bad = _flat(list(jsonl_chunks(io.BytesIO(text.encode()), TABULAR, 10)))
    assert good == [
        (0, 1, {"age": 40.0, "plan": "pro", "score": 1.5}),
        (1, 2, {"age": 71.0, "plan": "basic", "score": 2.5}),
    ]
    assert bad == []


def test_json_lines_that_are_not_utf8_reject_the_file() -> None:
    with pytest.raises(FileRejected, match="not valid UTF-8"):
        list(jsonl_chunks(io.BytesIO(b'{"age": 1}\n\xff\xfe\n'), TABULAR, 10))


@pytest.mark.parametrize(("depth", "shape"), [(100_000, "[]"), (100_000, "{}"), (33, "[]"), (1_000, "mixed")])
def test_a_line_nested_too_deep_is_refused_as_its_row_and_the_rest_is_read(depth: int, shape: str) -> None:
    """Python's parser gives up near 1,000 levels with a RecursionError: that crashed the file (retried for ever);
    a line past MAX_JSON_DEPTH (the HTTP body's rule) is now one row error, like a line that is not JSON."""
    if shape == "mixed":
        deep = '{"a": [' * (depth // 2) + "1" + "]}" * (depth // 2)
    elif shape == "{}":
        deep = '{"a": ' * depth + "1" + "}" * depth
    else:
        deep = "[" * depth + "]" * depth
    text = "\n".join(['[40, "pro", 1.5]', deep, '{"user": 1}', '[41, "basic", 2.5]'])
    good, bad = _flat(list(jsonl_chunks(io.BytesIO(text.encode()), TABULAR, 10)))
    assert [(row, line) for row, line, _ in good] == [(0, 1), (3, 4)], good
    assert [(row, line) for row, line, _ in bad] == [(1, 2), (2, 3)], bad
    assert bad[0][2] == [(None, f"is nested more than {MAX_JSON_DEPTH} levels deep: " + ROW_FORMS)], bad[0]


def test_a_line_as_deep_as_a_request_may_be_is_judged_as_a_row() -> None:
    # 32 levels, the most a request may nest: parsed, then refused by the coercer for what it is, not for its depth.
    text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "\n"
    _, bad = _flat(list(jsonl_chunks(io.BytesIO(text.encode()), TABULAR, 10)))
    [(row, line, reasons)] = bad
    assert (row, line) == (0, 1) and all("nested" not in reason for _, reason in reasons), reasons


# --- .npy ----------------------------------------------------------------------------------


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _read_npy(arr: np.ndarray, coercer: Coercer, chunk_rows: int) -> list[Chunk]:
    data = _npy(arr)
    layout = npy_layout(data, coercer)
    return list(npy_chunks(io.BytesIO(data[layout.offset :]), layout, coercer, chunk_rows))


def test_an_npy_of_images_is_read_row_by_row_in_place() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    good, bad = _flat(_read_npy(arr, IMAGE, chunk_rows=2))
    assert good == [
        (0, None, {"image": [[0, 1], [2, 3]]}),
        (1, None, {"image": [[4, 5], [6, 7]]}),
        (2, None, {"image": [[8, 9], [10, 11]]}),
    ]
    assert bad == []


def test_an_npy_value_the_input_cannot_hold_is_a_row_error() -> None:
    arr = np.array([[[1, 2], [3, 4]], [[1, 2], [3, 300]]], dtype=np.int64)
    good, bad = _flat(_read_npy(arr, IMAGE, chunk_rows=10))
    assert [row for row, _, _ in good] == [0]
    assert bad == [(1, None, [("image", "[1][1] is outside uint8's range 0..255")])]


def test_a_tabular_npy_is_read_in_feature_order() -> None:
    arr = np.array([["40", "pro", "1.5"], ["71", "basic", "2.5"]])
    good, _ = _flat(_read_npy(arr, TABULAR, chunk_rows=10))
    assert good == [
        (0, None, {"age": 40.0, "plan": "pro", "score": 1.5}),
        (1, None, {"age": 71.0, "plan": "basic", "score": 2.5}),
    ]


@pytest.mark.parametrize(
    ("arr", "coercer", "reason"),
    [
        (np.zeros((2, 3, 2), dtype=np.uint8), IMAGE, "the .npy array has shape [2, 3, 2]; this model takes [n, 2, 2]"),
        (
            np.zeros((2, 4)),
            TABULAR,
            "the .npy array has shape [2, 4]; it must be 2-D with 3 columns in this order: age,",
        ),
        (np.zeros((2, 3)), TABULAR, "the .npy array is numeric (float64) but the model has string feature(s) plan"),
        (np.zeros((2, 2)), TWO_INPUTS, "a .npy file holds one array, but this model takes 2 inputs (user, item_id)"),
        (np.zeros((2, 2), dtype=np.complex64), IMAGE, "the .npy array has dtype complex64; use a numeric or a unicode"),
    ],
    ids=["image_shape", "tabular_width", "numeric_for_strings", "several_inputs", "complex"],
)
def test_an_npy_that_does_not_fit_the_signature_is_refused_with_what_fits(
    arr: np.ndarray, coercer: Coercer, reason: str
) -> None:
    with pytest.raises(FileRejected) as info:
        npy_layout(_npy(arr), coercer)
    assert info.value.reason.startswith(reason), info.value.reason


def test_an_npy_that_needs_pickle_is_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileRejected, match="needs pickle to load"):
        npy_layout(buf.getvalue(), IMAGE)


def test_a_truncated_npy_is_refused() -> None:
    data = _npy(np.zeros((4, 2, 2), dtype=np.uint8))[:-3]
    layout = npy_layout(data, IMAGE)
    with pytest.raises(FileRejected, match="truncated: its header promises 4 rows"):
        list(npy_chunks(io.BytesIO(data[layout.offset :]), layout, IMAGE, 10))

"""Inputs of shape [1] (Keras' `Input(shape=(1,))`, as FeatureSpace builds them) take their one value bare.

`{"age": 54}` is `{"age": [54]}` on every path that carries a value per example: v1 rows and
columns, OIP v2 tensors of shape [n], .npy arrays [n]. What stays refused, with its reason: an
array of another length, and columns in which no input tells one example from a batch. Every
expected array and reason is written by hand.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from handler.core.coerce import CoercedRequest, CoercePolicy, Coercer
from handler.core.signature import Signature, TensorSpec
from handler.core.value_rules import ValuePolicy
from handler.core.values import to_batch
from handler.errors import InvalidInput
from handler.formats.jsonl import jsonl_chunks
from handler.formats.npy import npy_chunks, npy_layout

AGE = TensorSpec("age", "float32", (1,))
CP = TensorSpec("cp", "int32", (1,), vocabulary=frozenset({1, 2, 3, 4}))
THAL = TensorSpec("thal", "string", (1,), vocabulary=frozenset({"fixed", "normal"}))
VISITS = TensorSpec("visits", "float32")  # a scalar input beside them: it tells a batch from one example
OUT = (TensorSpec("output_0", "float32", (1,)),)
HEART = Signature(features=(AGE, CP, THAL), inputs=(AGE, CP, THAL), outputs=OUT, input_structure="dict")
MIXED = Signature(features=(AGE, VISITS), inputs=(AGE, VISITS), outputs=OUT, input_structure="dict")
ONLY_AGE = Signature(features=(AGE,), inputs=(AGE,), outputs=OUT)

ONE_VALUE_REASON = "has 2 values but takes one per example: send it bare or in an array of one"
AMBIGUOUS = (
    "has 2 values but takes one per example, and no input of the request tells one example from a batch "
    "(each takes one value): send a batch with each value in an array of one, or as rows (instances)"
)


def coerce(sig: Signature, body: Any) -> CoercedRequest:
    return Coercer(sig, CoercePolicy()).coerce(body)


def errors_of(sig: Signature, body: Any) -> list[tuple[Any, Any, str]]:
    with pytest.raises(InvalidInput) as info:
        coerce(sig, body)
    return [(e.instance, e.feature, e.reason) for e in info.value.errors]


def columns_of(req: CoercedRequest) -> dict[str, list[Any]]:
    return {name: col.tolist() for name, col in req.columns.items()}


# --- the value rules --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 100])  # the few-rows path and the vectorised one
def test_bare_numbers_and_strings_get_their_axis(n: int) -> None:
    ages, _ = to_batch(AGE, [54.5] * n, ValuePolicy())
    assert ages.dtype == np.float32 and ages.shape == (n, 1) and ages.tolist() == [[54.5]] * n
    words, _ = to_batch(THAL, ["fixed"] * n, ValuePolicy())
    assert words.shape == (n, 1) and words.tolist() == [["fixed"]] * n


def test_bare_and_boxed_values_mix_in_one_batch() -> None:
    arr, problems = to_batch(CP, [1, [2], 3.0, {"b64": "NA=="}], ValuePolicy())  # b64 of "4": bytes are no number
    assert problems == {3: ["must be a number, got an object"]}
    assert arr[:3].tolist() == [[1], [2], [3]]
    text, problems = to_batch(THAL, [{"b64": "Zml4ZWQ="}, ["normal"]], ValuePolicy())
    assert problems == {} and text.tolist() == [["fixed"], ["normal"]]


def test_a_bare_value_is_judged_as_itself_and_named_without_a_position() -> None:
    _, problems = to_batch(CP, [7, "x", 2.5, None], ValuePolicy())
    assert problems == {
        0: ["is not a value this input knows; expected one of 1, 2, 3, 4"],
        1: ["must be a number, got a string that is not one"],
        2: ["must be an integer for int32, got a fraction"],
        3: ["must be a number, got null"],
    }
    _, problems = to_batch(THAL, ["reversible"], ValuePolicy())
    assert problems == {0: ["is not a known category; expected one of fixed, normal"]}


def test_an_array_of_another_length_is_refused_saying_the_input_takes_one_value() -> None:
    _, problems = to_batch(AGE, [[50.0, 60.0], 54.0, []], ValuePolicy())
    assert problems == {
        0: [ONE_VALUE_REASON],
        2: ["has 0 values but takes one per example: send it bare or in an array of one"],
    }


def test_other_shapes_still_need_their_arrays() -> None:
    pair = TensorSpec("pair", "float32", (2,))
    _, problems = to_batch(pair, [1.0], ValuePolicy())
    assert problems == {0: ["must be an array of 2 values, got a number"]}
    column = TensorSpec("column", "float32", (1, 1))
    _, problems = to_batch(column, [1.0], ValuePolicy())
    assert problems == {0: ["must be an array of 1×1 values, got a number"]}


# --- v1 rows and columns ------------------------------------------------------------------------


def test_named_rows_take_a_scalar_per_feature_as_the_tutorial_sends_them() -> None:
    req = coerce(
        HEART, {"instances": [{"age": 54.0, "cp": 2, "thal": "fixed"}, {"age": [61.0], "cp": [4], "thal": "normal"}]}
    )
    assert req.batched and req.n == 2
    assert columns_of(req) == {"age": [[54.0], [61.0]], "cp": [[2], [4]], "thal": [["fixed"], ["normal"]]}


def test_a_one_input_model_takes_bare_instances() -> None:
    assert columns_of(coerce(ONLY_AGE, {"instances": [54.0, [61.0]]})) == {"age": [[54.0], [61.0]]}


def test_a_row_with_an_array_of_two_is_a_422_naming_instance_feature_and_reason() -> None:
    body = {"instances": [{"age": 54.0, "cp": 2, "thal": "fixed"}, {"age": [50.0, 60.0], "cp": 2, "thal": "fixed"}]}
    assert errors_of(HEART, body) == [(1, "age", ONE_VALUE_REASON)]


def test_columns_of_bare_values_are_one_example() -> None:
    req = coerce(HEART, {"inputs": {"age": 54.0, "cp": 2, "thal": "fixed"}})
    assert not req.batched and req.n == 1
    assert columns_of(req) == {"age": [[54.0]], "cp": [[2]], "thal": [["fixed"]]}


def test_columns_of_arrays_of_one_stay_one_example_as_before() -> None:
    req = coerce(HEART, {"inputs": {"age": [54.0], "cp": [2], "thal": ["fixed"]}})
    assert not req.batched and columns_of(req) == {"age": [[54.0]], "cp": [[2]], "thal": [["fixed"]]}


def test_columns_with_the_batch_axis_are_a_batch() -> None:
    req = coerce(HEART, {"inputs": {"age": [[54.0], [61.0]], "cp": [[2], [4]], "thal": [["fixed"], ["normal"]]}})
    assert req.batched and columns_of(req) == {
        "age": [[54.0], [61.0]],
        "cp": [[2], [4]],
        "thal": [["fixed"], ["normal"]],
    }


def test_another_input_decides_that_an_array_of_bare_values_is_a_batch() -> None:
    req = coerce(MIXED, {"inputs": {"age": [54.0, 61.0], "visits": [3.0, 7.0]}})
    assert req.batched and columns_of(req) == {"age": [[54.0], [61.0]], "visits": [3.0, 7.0]}
    one = coerce(MIXED, {"inputs": {"age": [54.0], "visits": [3.0]}})  # a batch of one, as visits says
    assert one.batched and columns_of(one) == {"age": [[54.0]], "visits": [3.0]}
    single = coerce(MIXED, {"inputs": {"age": 54.0, "visits": 3.0}})
    assert not single.batched and columns_of(single) == {"age": [[54.0]], "visits": [3.0]}


def test_an_example_of_two_values_beside_one_example_is_refused() -> None:
    assert errors_of(MIXED, {"inputs": {"age": [54.0, 61.0], "visits": 3.0}}) == [(None, "age", ONE_VALUE_REASON)]


def test_columns_that_no_input_tells_apart_are_ambiguous_and_refused_naming_each_input() -> None:
    body = {"inputs": {"age": [54.0, 61.0], "cp": [2, 4], "thal": ["fixed"]}}
    assert errors_of(HEART, body) == [(None, "age", AMBIGUOUS), (None, "cp", AMBIGUOUS)]
    assert errors_of(ONLY_AGE, {"inputs": [54.0, 61.0]}) == [(None, "age", AMBIGUOUS)]


# --- other paths ---------------------------------------------------------------------------------


def test_a_npy_array_of_n_values_is_one_value_per_row_for_a_one_input_model() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([54.0, 61.0, 47.0], dtype=np.float32))
    coercer = Coercer(ONLY_AGE, CoercePolicy())
    layout = npy_layout(buffer.getvalue(), coercer)
    assert layout.rows == 3 and layout.tensor == AGE
    buffer.seek(layout.offset)
    (chunk,) = npy_chunks(buffer, layout, coercer, chunk_rows=10)
    assert chunk.errors == [] and chunk.columns["age"].tolist() == [[54.0], [61.0], [47.0]]


def test_json_lines_rows_take_a_scalar_per_feature() -> None:
    lines = b'{"age": 54, "cp": 2, "thal": "fixed"}\n{"age": [61], "cp": 9, "thal": "normal"}\n'
    (chunk,) = jsonl_chunks(io.BytesIO(lines), Coercer(HEART, CoercePolicy()), chunk_rows=10)
    assert {name: col.tolist() for name, col in chunk.columns.items()} == {
        "age": [[54.0]],
        "cp": [[2]],
        "thal": [["fixed"]],
    }
    assert [(e.row, [(f.feature, f.reason) for f in e.errors]) for e in chunk.errors] == [
        (1, [("cp", "is not a value this input knows; expected one of 1, 2, 3, 4")])
    ]

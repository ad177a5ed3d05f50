"""Coercion of v1 bodies: every layout a client sends becomes the right value in the right column, or a 422.

Expected columns are written out by hand from the request, feature by feature, with values that
differ between features: a coercer that swapped two columns, or read an ordered row in another
order, fails here. Signatures are built by hand (tabular, tensor, several named inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from handler.core.coerce import CoercedRequest, CoercePolicy, Coercer
from handler.core.signature import Signature, TensorSpec
from handler.errors import InvalidInput

OUT = (TensorSpec("output_0", "float32", (1,)),)

# Tabular, like churn: raw scalar features behind a numpy preprocessor.
TABULAR = Signature(
    features=(
        TensorSpec("tenure", "float64", fill_value=30.0),
        TensorSpec("age", "float64", fill_value=50.0),
        TensorSpec("plan", "string", vocabulary=frozenset({"basic", "pro"})),
        TensorSpec("channel", "string"),
        TensorSpec("score", "float64", fill_value=3.0),
    ),
    inputs=(TensorSpec("features", "float32", (7,)),),
    outputs=OUT,
)
ROW: dict[str, Any] = {"tenure": 12.0, "age": 40.0, "plan": "pro", "channel": "web", "score": 4.5}
ORDERED = [12.0, 40.0, "pro", "web", 4.5]  # the same row in feature order

# Several named inputs, like the recommender: a float vector and an id into an Embedding(200).
TWO_INPUTS = Signature(
    features=(TensorSpec("user", "float32", (3,)), TensorSpec("item_id", "int32", index_range=(0, 200))),
    inputs=(TensorSpec("user", "float32", (3,)), TensorSpec("item_id", "int32", index_range=(0, 200))),
    outputs=OUT,
    input_structure="dict",
)

# One tensor input, like digits (smaller).
IMAGE_SPEC = TensorSpec("image", "uint8", (2, 2, 1))
IMAGE = Signature(features=(IMAGE_SPEC,), inputs=(IMAGE_SPEC,), outputs=OUT)
IMG_A = [[[1], [2]], [[3], [4]]]
IMG_B = [[[250], [251]], [[252], [253]]]


def coerce(sig: Signature, body: Any, **policy: Any) -> CoercedRequest:
    return Coercer(sig, CoercePolicy(**policy)).coerce(body)


def errors_of(sig: Signature, body: Any, **policy: Any) -> list[tuple[Any, Any, str]]:
    with pytest.raises(InvalidInput) as info:
        coerce(sig, body, **policy)
    assert info.value.status == 422 and info.value.code == "invalid_input"
    return [(e.instance, e.feature, e.reason) for e in info.value.errors]


def columns(req: CoercedRequest) -> dict[str, list[Any]]:
    return {name: col.tolist() for name, col in req.columns.items()}


# --- rows ----------------------------------------------------------------------------------


def test_named_rows_put_each_value_in_its_own_column_whatever_the_key_order() -> None:
    other = {"score": 1.5, "channel": "store", "age": 71.0, "plan": "basic", "tenure": 2.0}
    req = coerce(TABULAR, {"instances": [ROW, other]})
    assert columns(req) == {
        "tenure": [12.0, 2.0],
        "age": [40.0, 71.0],
        "plan": ["pro", "basic"],
        "channel": ["web", "store"],
        "score": [4.5, 1.5],
    }
    assert req.columns["tenure"].dtype == np.float64 and req.columns["plan"].dtype == object
    assert (req.n, req.format, req.batched) == (2, "instances", True)


def test_ordered_rows_follow_the_feature_order() -> None:
    req = coerce(TABULAR, {"instances": [ORDERED, [1.0, 2.0, "basic", "x", 3.0]]})
    assert columns(req) == {
        "tenure": [12.0, 1.0],
        "age": [40.0, 2.0],
        "plan": ["pro", "basic"],
        "channel": ["web", "x"],
        "score": [4.5, 3.0],
    }


def test_ints_bools_and_numeric_strings_become_the_feature_dtype() -> None:
    req = coerce(TABULAR, {"instances": [{**ROW, "tenure": 12, "age": " 40.5 ", "score": True}]})
    assert columns(req) == {"tenure": [12.0], "age": [40.5], "plan": ["pro"], "channel": ["web"], "score": [1.0]}


def test_an_ordered_row_of_the_wrong_length_says_the_order() -> None:
    [(i, f, reason)] = errors_of(TABULAR, {"instances": [[1, 2, 3]]})
    assert (i, f) == (0, None)
    assert reason == "has 3 values but the model takes 5, in this order: tenure, age, plan, channel, score"


def test_ordered_rows_are_refused_when_a_feature_is_a_tensor() -> None:
    [(i, f, reason)] = errors_of(TWO_INPUTS, {"instances": [[[0.1, 0.2, 0.3], 5]]})
    assert (i, f) == (0, None)
    assert reason == "must be an object with one entry per input (user, item_id), got an array"


def test_missing_and_unknown_keys_are_named_per_instance() -> None:
    bad = {k: v for k, v in ROW.items() if k != "age"} | {"agee": 40}
    errs = errors_of(TABULAR, {"instances": [ROW, bad]})
    assert sorted(errs) == [(1, "age", "is missing"), (1, "agee", "is not an input of this model")]


def test_unknown_keys_can_be_ignored_by_policy() -> None:
    req = coerce(TABULAR, {"instances": [{**ROW, "extra": 1}]}, unknown_features="ignore")
    assert columns(req)["age"] == [40.0]


def test_wrong_kinds_name_the_feature_and_the_kind_but_never_the_value() -> None:
    body = {"instances": [{**ROW, "age": [40], "plan": 2, "tenure": None, "channel": 987654}]}
    with pytest.raises(InvalidInput) as info:
        coerce(TABULAR, body)
    assert sorted((e.instance, e.feature, e.reason) for e in info.value.errors) == [
        (0, "age", "must be a single value, got an array"),
        (0, "channel", 'must be a string (or {"b64": ...} for bytes), got a number'),
        (0, "plan", 'must be a string (or {"b64": ...} for bytes), got a number'),
        (0, "tenure", "must be a number, got null"),
    ]
    assert "987654" not in info.value.message


def test_a_strict_vocabulary_refuses_an_unseen_value_and_a_lenient_one_takes_it() -> None:
    assert errors_of(TABULAR, {"instances": [{**ROW, "plan": "lifetime"}]}) == [
        (0, "plan", "is not a known category; expected one of basic, pro")
    ]
    assert columns(coerce(TABULAR, {"instances": [{**ROW, "channel": "carrier pigeon"}]}))["channel"] == [
        "carrier pigeon"
    ]


def test_nan_is_refused_or_imputed_with_the_recorded_training_value() -> None:
    row = {**ROW, "age": float("nan"), "tenure": float("inf")}
    errs = errors_of(TABULAR, {"instances": [row]})
    assert sorted(errs) == [
        (0, "age", "must be a finite number, got NaN or infinity"),
        (0, "tenure", "must be a finite number, got NaN or infinity"),
    ]
    req = coerce(TABULAR, {"instances": [row]}, non_finite="impute")
    assert columns(req)["age"] == [50.0] and columns(req)["tenure"] == [30.0]  # the specs' fill values


def test_numeric_strings_under_reject_policy_are_refused() -> None:
    assert errors_of(TABULAR, {"instances": [{**ROW, "age": "40"}]}, numeric_strings="reject") == [
        (0, "age", "must be a number, got a string (NUMERIC_STRINGS=reject)")
    ]


def test_an_integer_too_large_for_float64_is_a_422_not_a_crash() -> None:
    errs = errors_of(TABULAR, {"instances": [{**ROW, "age": 10**400}]})
    assert [(i, f) for i, f, _ in errs] == [(0, "age")]
    assert "too large" in errs[0][2]


def test_every_problem_is_reported_not_just_the_first() -> None:
    rows = [{**ROW, "age": "x"}, ROW, {**ROW, "plan": "nope", "score": {}}]
    errs = errors_of(TABULAR, {"instances": rows})
    assert sorted((i, f) for i, f, _ in errs) == [(0, "age"), (2, "plan"), (2, "score")]


# --- ids and tensors -----------------------------------------------------------------------


def test_an_id_outside_the_embedding_names_the_instance_and_input() -> None:
    rows = [{"user": [0.1, 0.2, 0.3], "item_id": 4242}, {"user": [0.1, 0.2, 0.3], "item_id": -1}]
    with pytest.raises(InvalidInput) as info:
        coerce(TWO_INPUTS, {"instances": [*rows, {"user": [1.0, 2.0, 3.0], "item_id": 199}]})
    assert [(e.instance, e.feature, e.reason) for e in info.value.errors] == [
        (0, "item_id", "is an id outside this input's range 0..199"),
        (1, "item_id", "is an id outside this input's range 0..199"),
    ]
    assert "instance 0, feature 'item_id'" in info.value.message and "4242" not in info.value.message


def test_named_tensor_rows_land_in_their_inputs() -> None:
    req = coerce(
        TWO_INPUTS, {"instances": [{"item_id": 7, "user": [0.5, 1.5, 2.5]}, {"user": [3, 4, 5], "item_id": 0}]}
    )
    assert columns(req) == {"user": [[0.5, 1.5, 2.5], [3.0, 4.0, 5.0]], "item_id": [7, 0]}
    assert req.columns["user"].dtype == np.float32 and req.columns["item_id"].dtype == np.int32


def test_a_single_input_model_takes_the_value_itself_as_a_row() -> None:
    req = coerce(IMAGE, {"instances": [IMG_A, {"image": IMG_B}]})
    assert req.columns["image"].tolist() == [IMG_A, IMG_B]
    assert req.columns["image"].dtype == np.uint8


def test_an_image_with_a_short_row_names_instance_input_and_position() -> None:
    errs = errors_of(IMAGE, {"instances": [IMG_A, [[[1], [2]], [[3]]]]})
    assert errs == [(1, "image", "[1] has 1 entries on axis 2, expected 2")]


# --- columns -------------------------------------------------------------------------------


def test_one_tensor_example_without_the_batch_dimension() -> None:
    for body in ({"inputs": IMG_A}, {"inputs": {"image": IMG_A}}):
        req = coerce(IMAGE, body)
        assert (req.n, req.format, req.batched) == (1, "inputs", False)
        assert req.columns["image"].tolist() == [IMG_A]
    req = coerce(IMAGE, {"inputs": [IMG_A, IMG_B]})
    assert (req.n, req.batched) == (2, True) and req.columns["image"].tolist() == [IMG_A, IMG_B]


def test_several_inputs_without_the_batch_dimension() -> None:
    req = coerce(TWO_INPUTS, {"inputs": {"user": [0.5, 1.5, 2.5], "item_id": 9}})
    assert (req.n, req.batched) == (1, False)
    assert columns(req) == {"user": [[0.5, 1.5, 2.5]], "item_id": [9]}


def test_columnar_batches_keep_each_input_in_place() -> None:
    req = coerce(TWO_INPUTS, {"inputs": {"item_id": [3, 4], "user": [[1, 2, 3], [4, 5, 6]]}})
    assert (req.n, req.batched) == (2, True)
    assert columns(req) == {"user": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "item_id": [3, 4]}


def test_tabular_columns_and_one_ordered_example() -> None:
    req = coerce(TABULAR, {"inputs": {n: [v, v] for n, v in ROW.items()}})
    assert (req.n, req.batched) == (2, True) and columns(req)["age"] == [40.0, 40.0]
    for body in ({"inputs": ROW}, {"inputs": ORDERED}):
        req = coerce(TABULAR, body)
        assert (req.n, req.batched) == (1, False)
        assert columns(req) == {k: [v] for k, v in ROW.items()}
    req = coerce(TABULAR, {"inputs": [ORDERED, ORDERED]})
    assert (req.n, req.batched) == (2, True) and columns(req)["plan"] == ["pro", "pro"]


def test_columns_of_different_lengths_or_mixed_batching_are_refused() -> None:
    assert errors_of(TWO_INPUTS, {"inputs": {"user": [[1, 2, 3], [4, 5, 6]], "item_id": [1, 2, 3]}}) == [
        (None, None, "inputs have different batch sizes (user=2, item_id=3)")
    ]
    [(i, f, reason)] = errors_of(TWO_INPUTS, {"inputs": {"user": [[1, 2, 3], [4, 5, 6]], "item_id": 1}})
    assert (i, f) == (None, "item_id") and "is one example (int32 scalar) while other inputs are batches" in reason


def test_unknown_and_missing_columns_are_named() -> None:
    errs = errors_of(TWO_INPUTS, {"inputs": {"user": [1, 2, 3], "itemid": 3}})
    assert sorted(errs, key=str) == [(None, "item_id", "is missing"), (None, "itemid", "is not an input of this model")]


def test_a_bad_value_in_a_batched_column_names_its_instance() -> None:
    errs = errors_of(TWO_INPUTS, {"inputs": {"user": [[1, 2, 3], [4, 5, 6]], "item_id": [1, 200]}})
    assert errs == [(1, "item_id", "is an id outside this input's range 0..199")]


def test_a_single_string_input_takes_b64_leaves() -> None:
    spec = TensorSpec("text", "string")
    sig = Signature(features=(spec,), inputs=(spec,), outputs=OUT)
    # b64 of UTF-8 text is that text (one value, one answer); other bytes (0xff is no UTF-8) stay bytes.
    got = coerce(sig, {"instances": [{"b64": "aGk="}, "plain", {"b64": "/wA="}]}).columns["text"].tolist()
    assert got == ["hi", "plain", b"\xff\x00"]
    req = coerce(sig, {"inputs": {"b64": "aGk="}})
    assert (req.n, req.batched) == (1, False) and req.columns["text"].tolist() == ["hi"]


# --- the body ------------------------------------------------------------------------------


def test_batch_over_the_limit_and_empty_batch() -> None:
    assert errors_of(TABULAR, {"instances": [ROW] * 5}, max_batch_size=4) == [
        (None, "instances", "holds 5 examples, over MAX_BATCH_SIZE=4: split the batch")
    ]
    assert errors_of(TABULAR, {"instances": []}) == [(None, "instances", "is empty: send at least one example")]


def test_body_shape_errors() -> None:
    assert errors_of(TABULAR, [1, 2]) == [(None, None, "the body must be a JSON object, got an array")]
    both = "the body needs exactly one of 'instances' (rows) or 'inputs' (columns)"
    assert errors_of(TABULAR, {"instances": [ROW], "inputs": ROW}) == [(None, None, both)]
    assert errors_of(TABULAR, {}) == [(None, None, both)]
    assert errors_of(TABULAR, {"instances": [ROW], "extra": 1}) == [(None, "extra", "unknown top-level key")]
    assert errors_of(TABULAR, {"instances": ROW}) == [(None, "instances", "must be an array, got an object")]
    assert coerce(TABULAR, {"signature_name": "serving_default", "instances": [ROW]}).n == 1


# --- rows of files -------------------------------------------------------------------------


def test_coerce_rows_keeps_the_good_rows_with_their_values_and_numbers_the_bad_ones() -> None:
    coercer = Coercer(TABULAR, CoercePolicy())
    second = {**ROW, "age": 41.0}
    cols, errs, good = coercer.coerce_rows([ROW, {**ROW, "age": "x"}, second, [1.0]], first_index=10)
    assert good.tolist() == [0, 2]
    assert {k: v.tolist() for k, v in cols.items()}["age"] == [40.0, 41.0]
    assert [(e.instance, e.feature) for e in errs] == [(11, "age"), (13, None)]


def test_coerce_values_takes_arrays_a_reader_made() -> None:
    coercer = Coercer(TWO_INPUTS, CoercePolicy())
    values = {"user": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64), "item_id": np.array([5, 300])}
    cols, errs, good = coercer.coerce_values(values, 2, first_index=100)  # type: ignore[arg-type]  # readers do
    assert good.tolist() == [0]
    assert cols["user"].tolist() == [[1.0, 2.0, 3.0]] and cols["item_id"].tolist() == [5]
    assert [(e.instance, e.feature) for e in errs] == [(101, "item_id")]


def test_coerce_tensors_checks_names_and_values_or_raises() -> None:
    coercer = Coercer(TWO_INPUTS, CoercePolicy())
    req = coercer.coerce_tensors({"user": [[1, 2, 3]], "item_id": [8]}, 1)
    assert {k: v.tolist() for k, v in req.columns.items()} == {"user": [[1.0, 2.0, 3.0]], "item_id": [8]}
    with pytest.raises(InvalidInput) as info:
        coercer.coerce_tensors({"user": [[1, 2, 3]], "item": [8]}, 1)
    assert sorted((e.feature, e.reason) for e in info.value.errors) == [
        ("item", "is not an input of this model"),
        ("item_id", "is missing"),
    ]

"""values.to_batch: the exact per-dtype rules. Every expected array and reason is written out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np

from handler.core.signature import TensorSpec
from handler.core.value_rules import MAX_REASONS, ValuePolicy, kind_of
from handler.core.values import to_batch

REJECT = ValuePolicy()
IMPUTE = ValuePolicy(non_finite="impute")


def ok(spec: TensorSpec, examples: list[Any], policy: ValuePolicy = REJECT) -> np.ndarray:
    arr, problems = to_batch(spec, examples, policy)
    assert problems == {}, problems
    return arr


def refused(spec: TensorSpec, examples: list[Any], policy: ValuePolicy = REJECT) -> dict[int, list[str]]:
    _, problems = to_batch(spec, examples, policy)
    return problems


# --- integers ------------------------------------------------------------------------------

UINT8 = TensorSpec("pixel", "uint8")
ITEM = TensorSpec("item_id", "int32", index_range=(0, 200))


def test_uint8_accepts_its_whole_range_and_integral_floats() -> None:
    arr = ok(UINT8, [255, 2.0, 0])
    assert arr.dtype == np.uint8
    assert arr.tolist() == [255, 2, 0]


def test_uint8_refuses_256_and_minus_one_and_a_fraction() -> None:
    assert refused(UINT8, [256, 7, -1, 1.5]) == {
        0: ["is outside uint8's range 0..255"],
        2: ["is outside uint8's range 0..255"],
        3: ["must be an integer for uint8, got a fraction"],
    }


def test_a_fraction_for_an_int_input_is_refused_never_truncated() -> None:
    arr, problems = to_batch(TensorSpec("n", "int32"), [1.9, 4], REJECT)
    assert problems == {0: ["must be an integer for int32, got a fraction"]}
    assert arr[1] == 4  # the good example keeps its place; the bad one is not 1


def test_an_index_input_accepts_its_range_and_refuses_ids_outside_it() -> None:
    assert ok(ITEM, [0, 199, 17.0]).tolist() == [0, 199, 17]
    # index_range (0, 200) is an Embedding(200): ids 0..199.
    assert refused(ITEM, [200, 5, -1]) == {
        0: ["is an id outside this input's range 0..199"],
        2: ["is an id outside this input's range 0..199"],
    }


def test_narrow_ints_refuse_what_their_dtype_cannot_hold() -> None:
    assert refused(TensorSpec("n", "int8"), [127, 128, -129, -128]) == {
        1: ["is outside int8's range -128..127"],
        2: ["is outside int8's range -128..127"],
    }


def test_int64_ids_above_2_to_the_53_stay_exact() -> None:
    # 2**53 + 1 has no float64: a path through float would give ...992.
    assert ok(TensorSpec("id", "int64"), [9007199254740993]).tolist() == [9007199254740993]
    assert refused(TensorSpec("id", "int64"), [2**63]) == {
        0: ["is outside int64's range -9223372036854775808..9223372036854775807"]
    }


def test_booleans_count_as_zero_and_one_for_numbers() -> None:
    assert ok(TensorSpec("n", "int32"), [True, False]).tolist() == [1, 0]
    assert ok(TensorSpec("x", "float32"), [True, 2.5]).tolist() == [1.0, 2.5]


# --- floats --------------------------------------------------------------------------------

F32 = TensorSpec("x", "float32")
F64 = TensorSpec("x", "float64")


def test_float32_refuses_numbers_it_cannot_hold() -> None:
    assert refused(F32, [1e39, 1.0, -1e39]) == {
        0: ["is too large for float32 (at most ±3.4e+38)"],
        2: ["is too large for float32 (at most ±3.4e+38)"],
    }
    assert ok(F32, [3.0e38]).tolist() == [np.float32(3.0e38).item()]


def test_float64_accepts_what_float64_holds() -> None:
    assert ok(F64, [1e300, -1e300, 0.1]).tolist() == [1e300, -1e300, 0.1]


def test_float16_refuses_numbers_over_65504() -> None:
    assert refused(TensorSpec("x", "float16"), [65504, 70000.0]) == {
        1: ["is too large for float16 (at most ±6.55e+04)"]
    }


def test_an_integer_too_large_for_any_float_is_refused_not_a_crash() -> None:
    # JSON allows a 401-digit integer literal; json.loads gives a Python int that no float can hold.
    huge = 10**400
    assert refused(F64, [huge, 1.0]) == {0: ["is too large for float64 (at most ±1.8e+308)"]}
    assert refused(F32, [huge]) == {0: ["is too large for float32 (at most ±3.4e+38)"]}


def test_nan_and_infinity_are_refused_under_reject() -> None:
    reason = "must be a finite number, got NaN or infinity"
    assert refused(F32, [float("nan"), 1.0, float("inf"), float("-inf")]) == {0: [reason], 2: [reason], 3: [reason]}


def test_nan_is_imputed_with_the_fill_value_only_under_impute() -> None:
    spec = TensorSpec("age", "float64", fill_value=54.5)
    assert ok(spec, [float("nan"), 1.0, float("inf")], IMPUTE).tolist() == [54.5, 1.0, 54.5]
    assert refused(spec, [float("nan")]) == {0: ["must be a finite number, got NaN or infinity"]}
    # Without a recorded training value there is nothing to impute with.
    assert refused(F64, [float("nan")], IMPUTE) == {0: ["must be a finite number, got NaN or infinity"]}


def test_numeric_strings_are_parsed_unless_the_policy_rejects_them() -> None:
    assert ok(F32, ["1.5", " 2 "]).tolist() == [1.5, 2.0]
    assert ok(TensorSpec("n", "int32"), ["12", "1.0"]).tolist() == [12, 1]
    assert refused(F32, ["forty"]) == {0: ["must be a number, got a string that is not one"]}
    assert refused(F32, ["nan"]) == {0: ["must be a finite number, got NaN or infinity"]}
    assert refused(F32, ["1.5"], ValuePolicy(numeric_strings="reject")) == {
        0: ["must be a number, got a string (NUMERIC_STRINGS=reject)"]
    }


def test_numbers_refuse_null_objects_and_arrays_by_kind() -> None:
    assert refused(F32, [None, {"b64": "aGk="}, [1.0]]) == {
        0: ["must be a number, got null"],
        1: ["must be a number, got an object"],
        2: ["must be a single value, got an array"],
    }


# --- bool and string -----------------------------------------------------------------------


def test_bool_takes_true_false_and_the_integers_0_and_1_only() -> None:
    spec = TensorSpec("flag", "bool")
    arr = ok(spec, [True, False, 1, 0])
    assert arr.dtype == np.bool_ and arr.tolist() == [True, False, True, False]
    assert refused(spec, [2, "true", 1.0, None]) == {
        0: ["must be true or false, got a number"],
        1: ["must be true or false, got a string"],
        2: ["must be true or false, got a number"],
        3: ["must be true or false, got null"],
    }


def test_string_inputs_take_text_and_b64_bytes() -> None:
    arr = ok(TensorSpec("word", "string"), ["café", {"b64": "aGk="}, {"b64": "/wA="}])
    assert arr.dtype == object
    # "aGk=" is base64 for the bytes "hi": UTF-8 text, so the text "hi", as if sent as a string (one value, one
    # answer); "/wA=" is 0xff 0x00, no UTF-8, so it stays bytes.
    assert arr.tolist() == ["café", "hi", b"\xff\x00"]


def test_string_inputs_refuse_numbers_null_booleans_and_bad_base64() -> None:
    want = 'must be a string (or {"b64": ...} for bytes), got '
    assert refused(TensorSpec("word", "string"), [3, None, True, {"b64": "!!"}, "ok"]) == {
        0: [want + "a number"],
        1: [want + "null"],
        2: [want + "a boolean"],
        3: ['has a "b64" value that is not valid base64'],
    }


def test_a_strict_vocabulary_refuses_unseen_values_without_echoing_them() -> None:
    spec = TensorSpec("plan", "string", vocabulary=frozenset({"basic", "pro"}))
    assert ok(spec, ["pro", "basic"]).tolist() == ["pro", "basic"]
    assert refused(spec, ["basic", "zebra"]) == {1: ["is not a known category; expected one of basic, pro"]}


def test_string_tensors_keep_every_word_in_place() -> None:
    spec = TensorSpec("words", "string", (3,))
    arr = ok(spec, [["a", "b", ""], ["c", {"b64": "aGk="}, "d"]])
    assert arr.shape == (2, 3)
    assert arr.tolist() == [["a", "b", ""], ["c", "hi", "d"]]


# --- shapes --------------------------------------------------------------------------------

IMAGE = TensorSpec("image", "uint8", (28, 28, 1))
SEQUENCE = TensorSpec("readings", "float32", (20, 3))


def _image(fill: int = 7) -> list[Any]:
    return [[[fill] for _ in range(28)] for _ in range(28)]


def test_a_nested_example_lands_in_place_with_the_spec_dtype() -> None:
    seq = [[i + 0.5, i + 0.25, -i] for i in range(20)]
    arr = ok(SEQUENCE, [seq, seq[::-1]])
    assert arr.dtype == np.float32 and arr.shape == (2, 20, 3)
    assert arr[0, 3].tolist() == [3.5, 3.25, -3.0]
    assert arr[1, 0].tolist() == [19.5, 19.25, -19.0]


def test_an_image_with_one_short_row_names_the_row_and_not_the_values() -> None:
    bad = _image(123)
    bad[5] = bad[5][:27]
    problems = refused(IMAGE, [_image(), bad])
    assert problems == {1: ["[5] has 27 entries on axis 2, expected 28"]}
    assert "123" not in problems[1][0]


def test_a_sequence_with_a_two_value_step_names_the_step() -> None:
    bad = [[0.123456, 1.0, 2.0] for _ in range(20)]
    bad[7] = [0.123456, 1.0]
    problems = refused(SEQUENCE, [bad])
    assert problems == {0: ["[7] has 2 entries on axis 2, expected 3"]}
    assert "0.123456" not in problems[0][0]


def test_a_value_at_the_wrong_depth_is_named_by_its_position() -> None:
    bad = _image()
    bad[3][4] = 9  # a bare number where [9] belongs
    worse = _image()
    worse[0][1] = [[9]]  # one level too deep
    assert refused(IMAGE, [bad, worse]) == {
        0: ["[3][4] must be an array of 1 values, got a number"],
        1: ["[0][1][0] must be a single value, got an array"],
    }


def test_a_scalar_for_a_vector_and_a_vector_for_a_scalar_are_refused() -> None:
    assert refused(TensorSpec("v", "float32", (2,)), [3.0]) == {0: ["must be an array of 2 values, got a number"]}
    assert refused(F32, [[3.0]]) == {0: ["must be a single value, got an array"]}


def test_a_big_bad_tensor_lists_the_first_problems_and_counts_the_rest() -> None:
    problems = refused(IMAGE, [_image(300)])
    assert MAX_REASONS == 3
    assert problems == {
        0: [
            "[0][0][0] is outside uint8's range 0..255",
            "[0][1][0] is outside uint8's range 0..255",
            "[0][2][0] is outside uint8's range 0..255",
            "and 781 more problem(s) like these",  # 28 * 28 = 784 bad pixels
        ]
    }


def test_free_dimensions_take_any_length_but_one_length_per_batch() -> None:
    spec = TensorSpec("tokens", "int32", (None,))
    assert ok(spec, [[1, 2, 3], [4, 5, 6]]).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert refused(spec, [[1, 2], [1, 2, 3]]) == {
        1: ["has shape [3] but earlier examples have [2]: examples in one request must have the same shape"]
    }


def test_a_ragged_example_under_free_dimensions_is_refused_not_a_crash() -> None:
    # A fully convolutional model takes images of any size, [None, None, 3]; one row shorter than the rest.
    spec = TensorSpec("image", "float32", (None, None, 3))
    ragged = [[[0.0, 0.0, 0.0]] * 4, [[0.0, 0.0, 0.0]] * 3, [[0.0, 0.0, 0.0]] * 4]
    problems = refused(spec, [ragged])
    assert list(problems) == [0]
    assert "[1]" in problems[0][0] and "3 entries" in problems[0][0]


def test_good_examples_keep_their_values_when_another_one_is_bad() -> None:
    arr, problems = to_batch(TensorSpec("v", "float32", (2,)), [[1.5, 2.5], [1.0, "x"], [3.5, 4.5]], REJECT)
    assert problems == {1: ["[1] must be a number, got a string that is not one"]}
    assert arr[0].tolist() == [1.5, 2.5] and arr[2].tolist() == [3.5, 4.5]


def test_kinds_in_messages_never_carry_the_value() -> None:
    assert [kind_of(v) for v in (None, True, 3, 2.5, "secret", [1], {"a": 1})] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "an array",
        "an object",
    ]

"""Answers laid out as TF Serving's REST API documents them; every expected body is written by hand.

TF Serving (https://www.tensorflow.org/tfx/serving/api_rest): a row request gets "predictions",
one entry per instance, an object keyed by output name when the model has several outputs; a
columnar request gets "outputs", the batch (or {name: batch}), without the batch dimension when
the request had none. Never stacked by output.
"""

from __future__ import annotations

import json

import numpy as np

from handler.core.answer import format_v1, jsonable, per_instance
from handler.core.coerce import CoercedRequest


def rows(n: int) -> CoercedRequest:
    return CoercedRequest(columns={}, n=n, format="instances", batched=True)


def cols(n: int, batched: bool = True) -> CoercedRequest:
    return CoercedRequest(columns={}, n=n, format="inputs", batched=batched)


ONE = {"output_0": np.array([[0.25], [0.75]], dtype=np.float32)}
TWO = {
    "click": np.array([[0.25], [0.75]], dtype=np.float32),
    "score": np.array([[1.5], [-2.0]], dtype=np.float32),
}


def test_one_output_gives_one_prediction_per_instance() -> None:
    assert format_v1(ONE, rows(2), ["output_0"]) == {"predictions": [[0.25], [0.75]]}


def test_a_scalar_output_gives_one_number_per_instance() -> None:
    out = {"p": np.array([0.25, 0.75], dtype=np.float32)}
    assert format_v1(out, rows(2), ["p"]) == {"predictions": [0.25, 0.75]}


def test_two_named_outputs_give_one_object_per_instance_never_two_predictions() -> None:
    assert format_v1(TWO, rows(2), ["click", "score"]) == {
        "predictions": [{"click": [0.25], "score": [1.5]}, {"click": [0.75], "score": [-2.0]}]
    }


def test_list_outputs_named_output_0_and_output_1_are_keyed_per_instance() -> None:
    out = {"output_0": np.array([[1.0]], dtype=np.float32), "output_1": np.array([[2.0, 3.0]], dtype=np.float32)}
    assert format_v1(out, rows(1), ["output_0", "output_1"]) == {
        "predictions": [{"output_0": [1.0], "output_1": [2.0, 3.0]}]
    }


def test_columnar_one_output_gives_the_batch_and_unbatched_gives_one_example() -> None:
    assert format_v1(ONE, cols(2), ["output_0"]) == {"outputs": [[0.25], [0.75]]}
    one = {"output_0": np.array([[0.5, 0.5]], dtype=np.float32)}
    assert format_v1(one, cols(1, batched=False), ["output_0"]) == {"outputs": [0.5, 0.5]}


def test_columnar_several_outputs_give_a_batch_per_name() -> None:
    assert format_v1(TWO, cols(2), ["click", "score"]) == {
        "outputs": {"click": [[0.25], [0.75]], "score": [[1.5], [-2.0]]}
    }
    first = {name: arr[:1] for name, arr in TWO.items()}
    assert format_v1(first, cols(1, batched=False), ["click", "score"]) == {
        "outputs": {"click": [0.25], "score": [1.5]}
    }


def test_a_one_instance_row_request_keeps_its_batch_dimension() -> None:
    first = {"output_0": ONE["output_0"][:1]}
    assert format_v1(first, rows(1), ["output_0"]) == {"predictions": [[0.25]]}


def test_only_the_named_outputs_are_answered_in_the_given_order() -> None:
    answer = format_v1(TWO, rows(2), ["score", "click"])
    assert [list(p) for p in answer["predictions"]] == [["score", "click"], ["score", "click"]]


def test_float32_values_are_widened_exactly_and_ints_stay_ints() -> None:
    # float32(0.1) is 0.100000001490116119384765625; its float64 repr is 0.10000000149011612.
    out: dict[str, np.ndarray] = {"p": np.array([[0.1]], dtype=np.float32), "n": np.array([[3]], dtype=np.int64)}
    assert per_instance(out, ["p", "n"]) == [{"p": [0.10000000149011612], "n": [3]}]
    assert json.dumps(per_instance(out, ["p", "n"])) == '[{"p": [0.10000000149011612], "n": [3]}]'


def test_bytes_outputs_become_text_and_non_utf8_becomes_b64() -> None:
    words = np.array([b"cat", "d\u00e9j\u00e0".encode(), b"\xff"], dtype=object)
    assert jsonable(words) == ["cat", "d\u00e9j\u00e0", {"b64": "/w=="}]  # base64 of the byte 0xff
    assert format_v1({"label": words[:2]}, rows(2), ["label"]) == {"predictions": ["cat", "d\u00e9j\u00e0"]}


def test_bytes_tensors_become_nested_text() -> None:
    grid = np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object)
    assert jsonable(grid) == [["a", "b"], ["c", "d"]]
    fixed = np.array([b"up", b"down"])  # numpy's own bytes dtype (S4)
    assert jsonable(fixed) == ["up", "down"]


def test_every_answer_is_plain_json() -> None:
    answers = [
        format_v1(ONE, rows(2), ["output_0"]),
        format_v1(TWO, cols(2), ["click", "score"]),
        format_v1({"t": np.array([b"x"], dtype=object)}, cols(1, batched=False), ["t"]),
    ]
    assert [json.loads(json.dumps(a)) for a in answers] == answers

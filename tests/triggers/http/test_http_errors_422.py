"""422: a body that is JSON but does not fit the model's signature names every offending instance and input,
under every HTTP trigger, through OIP v2, and by direct invoke (a failed invocation carrying the error body)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from handler.app import Function
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, infer_path, predict_path
from tests.support.http_events import HTTP_TRIGGERS, body_of
from tests.triggers.http.test_http_errors import error

PREDICT = predict_path("churn")
INFER = infer_path("churn")


def _row(model: str = "churn", case: int = 0) -> dict[str, Any]:
    row: dict[str, Any] = zoo.cases(model)[case]["request"]["instances"][0]
    assert isinstance(row, dict)
    return copy.deepcopy(row)


def details(body: dict[str, Any]) -> set[tuple[int | None, str | None]]:
    return {(d["instance"], d["feature"]) for d in body["details"]}


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_every_offending_instance_and_feature_is_listed(trigger: str, functions: Functions) -> None:
    good, missing, wrong, unknown = _row(), _row(), _row(), _row()
    del missing["age"]
    wrong["tenure_months"] = "many"
    wrong["contract_type"] = "forever"
    unknown["shoe_size"] = 44
    body = {"instances": [good, missing, wrong, unknown]}
    response = functions.http("churn", "POST", PREDICT, body, trigger=trigger)
    err = error(response, 422, "invalid_input")
    assert details(err) == {(1, "age"), (2, "tenure_months"), (2, "contract_type"), (3, "shoe_size")}, err
    reasons = {d["feature"]: d["reason"] for d in err["details"]}
    assert reasons["age"] == "is missing"
    assert reasons["tenure_months"] == "must be a number, got a string that is not one"
    assert reasons["contract_type"].startswith("is not a known category") and "forever" not in err["error"]
    assert reasons["shoe_size"] == "is not an input of this model"
    assert "many" not in response["body"] and "forever" not in response["body"]


def test_a_row_with_an_unknown_key_still_has_its_bad_values_listed(functions: Functions) -> None:
    """Every problem of a row in one answer (coerce.py's own promise), not one 422 per fix."""
    wrong = _row()
    wrong["tenure_months"] = "many"
    wrong["contract_type"] = "forever"
    wrong["shoe_size"] = 44
    err = error(functions.http("churn", "POST", PREDICT, {"instances": [_row(), wrong]}), 422, "invalid_input")
    assert details(err) == {(1, "tenure_months"), (1, "contract_type"), (1, "shoe_size")}, err


# (model, a bad instance built from a golden row, the detail it must get: feature and reason fragment)
ZOO_BAD_ROWS = [
    ("recommender", {"item_id": 200}, "item_id", "outside this input's range 0..199"),
    ("recommender", {"item_id": -1}, "item_id", "outside this input's range 0..199"),
    ("recommender", {"item_id": 1.9}, "item_id", "must be an integer for int32, got a fraction"),
    ("recommender", {"user_features": [0.5] * 5}, "user_features", "has 5 entries on axis 1, expected 6"),
    ("reviews", {"words": ["good"] * 7}, "words", "has 7 entries on axis 1, expected 8"),
    ("reviews", {"review_length": [12.0, 13.0]}, "review_length", "has 2 values but takes one per example"),
    ("sensor", {"readings": [[0.1, 0.2]] * 20}, "readings", "has 2 entries on axis 2, expected 3"),
    ("digits", {"image": [[[0]] * 28] * 27}, "image", "has 27 entries on axis 1, expected 28"),
]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize(("model", "change", "feature", "reason"), ZOO_BAD_ROWS, ids=lambda v: str(v)[:20])
def test_zoo_422_names_the_instance_and_the_input(
    model: str, change: dict[str, Any], feature: str, reason: str, trigger: str, functions: Functions
) -> None:
    case = next(c for c in zoo.cases(model) if zoo.named_rows(c))
    good = zoo.named_rows(case)[0]  # type: ignore[index]
    body = {"instances": [good, {**good, **change}]}
    err = error(functions.http(model, "POST", predict_path(model), body, trigger=trigger), 422, "invalid_input")
    assert details(err) == {(1, feature)}, err
    assert reason in err["details"][0]["reason"], err


def test_bodies_that_are_not_requests_are_422_in_our_shape(functions: Functions) -> None:
    response = functions.http("churn", "POST", PREDICT, {"instances": "all of them"})
    body = error(response, 422, "invalid_input")
    assert body["details"] == [{"instance": None, "feature": "instances", "reason": "must be an array, got a string"}]
    assert "statusCode" not in body and "detail" not in body  # not Powertools' default shape

    body = error(functions.http("churn", "POST", INFER, {"inputs": [{"name": "age"}]}), 422, "invalid_input")
    assert details(body) == {(None, "age")} and len(body["details"]) == 2, body
    bodies: list[dict[str, Any]] = [{"inputs": "x"}, {"x": 1}, {"inputs": [1]}, {"inputs": []}]
    for bad in bodies:
        body = error(functions.http("churn", "POST", INFER, bad), 422, "invalid_input")
        assert body["details"] == [
            {"instance": None, "feature": "inputs", "reason": "must be a non-empty array of tensor objects"}
        ], (bad, body)


@pytest.mark.parametrize("name", ["other", "predict", 5, ["serving_default"]])
def test_a_signature_name_other_than_serving_default_is_400(name: Any, functions: Functions) -> None:
    request = {**zoo.cases("digits")[0]["request"], "signature_name": name}
    body = error(functions.http("digits", "POST", predict_path("digits"), request), 400, "bad_request")
    assert body["error"] == "signature_name must be 'serving_default' (or left out): this model has one signature"
    kind, answer = functions.direct_error("digits", request)
    assert (kind, answer["status"], answer["code"]) == ("InvalidInput", 400, "bad_request"), answer


@pytest.mark.parametrize("name", [None, "", "serving_default"])
def test_signature_name_serving_default_or_left_out_is_answered(name: Any, functions: Functions) -> None:
    case = zoo.cases("digits")[0]
    request = {**case["request"], "signature_name": name}
    response = functions.http("digits", "POST", predict_path("digits"), request)
    assert response["statusCode"] == 200, response["body"]
    zoo.check_v1("digits", case, body_of(response), f"signature_name={name!r}")


def test_v2_errors_name_the_tensor(functions: Functions) -> None:
    tensors = [
        {"name": "age", "shape": [2], "datatype": "FP32", "data": [1.0]},
        {"name": "contract_type", "shape": [1], "datatype": "FP32", "data": [1.0]},
        {"name": "tenure_months", "shape": [1], "datatype": "INT64", "data": [1.5]},
        {"name": "support_calls", "shape": [1], "datatype": "FP99", "data": [1.0]},
    ]
    body = error(functions.http("churn", "POST", INFER, {"inputs": tensors}), 422, "invalid_input")
    reasons = {d["feature"]: d["reason"] for d in body["details"]}
    assert reasons["age"] == "data has 1 values but shape [2] needs 2"
    assert reasons["contract_type"] == "is string scalar: send datatype BYTES, not FP32"
    assert reasons["tenure_months"] == "data[0] is not an integer, but datatype INT64 holds integers"
    assert reasons["support_calls"].startswith("datatype 'FP99' is not one of BOOL, UINT8")


def test_v2_a_tensor_without_a_name_is_named_by_its_position(functions: Functions) -> None:
    tensors = [{"name": "age", "shape": [1], "datatype": "FP32", "data": [40.0]}, {"shape": [1], "datatype": "FP32"}]
    body = error(functions.http("churn", "POST", INFER, {"inputs": tensors}), 422, "invalid_input")
    (unnamed,) = [d for d in body["details"] if d["feature"] == "inputs[1]"]
    assert unnamed["instance"] is None and unnamed["reason"].startswith("is not an input of this model"), body


def test_v2_missing_feature_tensors_are_listed_by_name(functions: Functions) -> None:
    tensors = [{"name": "age", "shape": [1], "datatype": "FP32", "data": [40.0]}]
    body = error(functions.http("churn", "POST", INFER, {"inputs": tensors}), 422, "invalid_input")
    missing = {d["feature"] for d in body["details"] if d["reason"] == "is missing"}
    assert missing == set(zoo.feature_names("churn")) - {"age"}, body


def test_v2_rows_tensor_with_the_wrong_width_is_422(functions: Functions) -> None:
    tensors = [{"name": "features", "shape": [1, 3], "datatype": "BYTES", "data": [[1, 2, 3]]}]
    body = error(functions.http("churn", "POST", INFER, {"inputs": tensors}), 422, "invalid_input")
    assert details(body) == {(None, "features")} and "must be [n, 12]" in body["details"][0]["reason"], body


# OIP v2 tensors that do not fit a zoo model: (model, tensors, the tensor named, reason fragment, instance)
def _t(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _rec(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [_t("user_features", [1, 6], "FP32", [0.5] * 6), item]


def _rev(words: dict[str, Any]) -> list[dict[str, Any]]:
    return [words, _t("review_length", [1, 1], "FP32", [12.0])]


V2_BAD = [
    ("recommender", _rec(_t("item_id", [1], "INT32", [200])), "item_id", "outside this input's range 0..199", 0),
    ("recommender", _rec(_t("item_id", [1], "INT64", [-1])), "item_id", "outside this input's range 0..199", 0),
    ("recommender", _rec(_t("item_id", [1], "FP32", [1.9])), "item_id", "got a fraction", 0),
    ("recommender", _rec(_t("item_id", [1], "BYTES", ["7"])), "item_id", "send datatype INT32", None),
    ("recommender", _rec(_t("item_id", [1, 2], "INT32", [1, 2])), "item_id", "must be [n]", None),
    ("digits", [_t("image", [1, 28, 28], "UINT8", [0] * 784)], "image", "must be [n, 28, 28, 1]", None),
    ("digits", [_t("image", [1, 784], "UINT8", [0] * 784)], "image", "must be [n, 28, 28, 1]", None),
    ("digits", [_t("image", [1, 28, 28, 1], "BYTES", ["0"] * 784)], "image", "send datatype UINT8", None),
    ("digits", [_t("image", [1, 28, 28, 1], "INT32", [300] * 784)], "image", "outside uint8's range 0..255", 0),
    ("digits", [_t("image", [1, 28, 28, 1], "UINT8", [1.5] * 784)], "image", "holds integers", None),
    ("sensor", [_t("readings", [1, 20, 2], "FP32", [0.0] * 40)], "readings", "must be [n, 20, 3]", None),
    ("sensor", [_t("readings", [1, 20, 3], "BYTES", ["x"] * 60)], "readings", "send datatype FP32", None),
    ("sensor", [_t("readings", [1, 20, 3], "FP32", ["x"] * 60)], "readings", "is not a number", None),
    ("reviews", _rev(_t("words", [1, 7], "BYTES", ["good"] * 7)), "words", "must be [n, 8]", None),
    ("reviews", _rev(_t("words", [1, 8], "FP32", [1.0] * 8)), "words", "send datatype BYTES, not FP32", None),
]


@pytest.mark.parametrize(("model", "tensors", "name", "fragment", "instance"), V2_BAD, ids=lambda v: str(v)[:24])
def test_v2_tensor_of_the_wrong_datatype_or_shape_is_422_naming_it(
    model: str, tensors: list[dict[str, Any]], name: str, fragment: str, instance: int | None, functions: Functions
) -> None:
    body = error(functions.http(model, "POST", infer_path(model), {"inputs": tensors}), 422, "invalid_input")
    assert details(body) == {(instance, name)}, body
    assert fragment in body["details"][0]["reason"], body
    assert len(body["details"]) == 1 or instance is not None


DIRECT_BAD = [{"instances": []}, {"instances": [[1, 2, 3]]}, {"rows": [1]}, {}, [1, 2, 3], "predict please", None]


@pytest.mark.parametrize("event", DIRECT_BAD)
def test_an_invalid_direct_invoke_fails_with_invalid_input_carrying_the_error_body(
    event: Any, functions: Functions
) -> None:
    """README: a request that cannot be answered fails the invocation; the message is the JSON error body."""
    kind, body = functions.direct_error("churn", event)
    assert kind == "InvalidInput", kind
    assert set(body) == {"error", "code", "details", "status", "request_id"}, body
    assert (body["status"], body["code"]) == (422, "invalid_input") and body["error"] and body["details"], body


@pytest.mark.parametrize("event", DIRECT_BAD)
def test_direct_errors_return_answers_the_same_error_object(event: Any) -> None:
    function = Function(Settings(model_dir=zoo.model_dir("churn"), direct_errors="return"))
    answer = function.handler()(event, LambdaContext())
    assert isinstance(answer, dict) and set(answer) == {"error", "code", "details", "status", "request_id"}, answer
    assert (answer["status"], answer["code"]) == (422, "invalid_input"), answer


@pytest.mark.parametrize(("model", "change", "feature", "reason"), ZOO_BAD_ROWS, ids=lambda v: str(v)[:20])
def test_an_invalid_zoo_direct_invoke_names_the_instance_and_input(
    model: str, change: dict[str, Any], feature: str, reason: str, functions: Functions
) -> None:
    good = zoo.named_rows(next(c for c in zoo.cases(model) if zoo.named_rows(c)))[0]  # type: ignore[index]
    kind, answer = functions.direct_error(model, {"instances": [good, {**good, **change}]})
    assert (kind, answer["status"], answer["code"]) == ("InvalidInput", 422, "invalid_input"), answer
    assert details(answer) == {(1, feature)} and reason in answer["details"][0]["reason"], answer

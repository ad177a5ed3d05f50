"""The routes real clients call beside predict and infer (issue 20): TF Serving's `:regress` and `:classify` under
versions and labels, KServe v1's readiness and liveness, Triton's model configuration, statistics and repository
index. Statuses and bodies are pinned exactly; expected values come from the committed goldens and manifests, and
the layouts from the protocols' documentation (TF Serving's REST API, KServe v1, Triton's protocol extensions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.bootstrap import Started
from handler.core.artifacts import Artifacts
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.errors import ModelLoadError
from handler.export import export_model
from handler.settings import Settings
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, predict_path
from tests.support.golden_requests import rows_of
from tests.support.http_events import HTTP_TRIGGERS, body_of, http_event
from tests.triggers.http.test_http_errors import error

SCALAR_OUTPUT = ("churn", "reviews", "sensor")  # one output of shape [1]: what :regress answers for
WHERE = ("", "/versions/1", "/labels/stable")  # the served model by name, by its version, by its label
LOAD_FAILURE = "the model uses custom object(s) skewless>Temperature that are not registered"


def _answer(response: dict[str, Any]) -> tuple[int, Any]:
    return response["statusCode"], body_of(response)


def _expected_scores(model: str, case: dict[str, Any]) -> np.ndarray:
    """Training's one score per example, from golden.json."""
    (out,) = zoo.output_names(model)
    expected = np.asarray(case["expected"][out], dtype=np.float64)
    return expected.reshape(len(expected))


def _assert_scores(model: str, got: Any, expected: np.ndarray, how: str) -> None:
    tol = zoo.golden(model)["tolerance"]
    assert isinstance(got, list) and all(isinstance(v, float) for v in got), f"{how}: {got!r:.300}"
    np.testing.assert_allclose(got, expected, rtol=tol["rtol"], atol=tol["atol"], err_msg=how)


# --- TF Serving :regress ------------------------------------------------------------------------


@pytest.mark.parametrize("model", SCALAR_OUTPUT)
def test_regress_answers_training_s_score_for_every_golden_case_under_name_version_and_label(
    model: str, functions: Functions
) -> None:
    for case in zoo.cases(model):
        body = {"signature_name": "serving_default", "examples": rows_of(model, case)}
        for where in WHERE:
            path = f"/v1/models/{model}{where}:regress"
            status, answer = _answer(functions.http(model, "POST", path, body))
            assert status == 200 and list(answer) == ["result"], (path, answer)
            _assert_scores(model, answer["result"], _expected_scores(model, case), f"{model}/{case['name']} {path}")


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_regress_context_is_shared_by_every_example(trigger: str, functions: Functions) -> None:
    case = next(c for c in zoo.cases("churn") if c["name"] == "named_features_shuffled_keys_1")
    rows = rows_of("churn", case)
    shared = {"contract_type": "month_to_month", "age": 40.0}
    # Both golden rows, their own values moved to the context where they agree with it, the rest kept per example.
    rows = [{**r, **shared} for r in rows]
    plain = _answer(functions.http("churn", "POST", "/v1/models/churn:regress", {"examples": rows}, trigger=trigger))
    examples = [{k: v for k, v in r.items() if k not in shared} for r in rows]
    body = {"context": shared, "examples": examples}
    status, answer = _answer(functions.http("churn", "POST", "/v1/models/churn:regress", body, trigger=trigger))
    assert status == 200 and answer == plain[1] and len(answer["result"]) == 2, (answer, plain)
    # ...and equals :predict on the same rows (the one path both take to the model).
    predicted = body_of(functions.http("churn", "POST", predict_path("churn"), {"instances": rows}, trigger=trigger))
    assert answer["result"] == [p[0] for p in predicted["predictions"]], (answer, predicted)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "digits",
            "model 'digits' answers output 'output_0' as float32 [10] per example: :regress answers one number per "
            "example, for a model with one numeric output of shape [] or [1]; use :predict",
        ),
        (
            "recommender",
            "model 'recommender' has 2 outputs (click_probability, relevance_score): :regress answers one score per "
            "example, for a model with one output of shape [] or [1]; use :predict",
        ),
    ],
)
def test_regress_on_a_model_without_one_scalar_output_is_400_saying_to_use_predict(
    model: str, message: str, functions: Functions
) -> None:
    examples = rows_of(model, zoo.cases(model)[0])
    for where in WHERE:
        path = f"/v1/models/{model}{where}:regress"
        body = error(functions.http(model, "POST", path, {"examples": examples}), 400, "bad_request")
        assert body == {"error": message, "code": "bad_request"}, (path, body)


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            {"instances": [{"age": 1.0}]},
            400,
            {
                "error": "the body needs 'examples': an array of objects, each keyed by input name",
                "code": "bad_request",
            },
        ),
        (
            {"examples": {"age": 1.0}},
            400,
            {
                "error": "the body needs 'examples': an array of objects, each keyed by input name",
                "code": "bad_request",
            },
        ),
        (
            {"context": [1, 2], "examples": []},
            400,
            {
                "error": "'context' must be an object of inputs shared by every example, got an array",
                "code": "bad_request",
            },
        ),
        (
            {"signature_name": "classify_x", "examples": []},
            400,
            {
                "error": "signature_name must be 'serving_default' (or left out): this model has one signature",
                "code": "bad_request",
            },
        ),
    ],
)
def test_a_regress_body_without_examples_or_with_a_bad_context_is_400_naming_the_field(
    body: dict[str, Any], status: int, expected: dict[str, Any], functions: Functions
) -> None:
    for where in WHERE:
        response = functions.http("churn", "POST", f"/v1/models/churn{where}:regress", body)
        assert _answer(response) == (status, expected), response["body"]


def test_an_example_that_is_not_an_object_is_422_naming_it(functions: Functions) -> None:
    row = rows_of("churn", zoo.cases("churn")[0])[0]
    body = {"examples": [row, [row[n] for n in zoo.feature_names("churn")]]}  # an array would lose the context
    answer = error(functions.http("churn", "POST", "/v1/models/churn:regress", body), 422, "invalid_input")
    reason = "an example must be an object keyed by input name, got an array"
    assert answer["details"] == [{"instance": 1, "feature": None, "reason": reason}], answer


@pytest.mark.parametrize("route", ["regress", "classify"])
@pytest.mark.parametrize("where", ["/versions/2", "/labels/canary"])
def test_an_unknown_version_or_label_is_404_exactly_as_predict_s(route: str, where: str, functions: Functions) -> None:
    examples = rows_of("churn", zoo.cases("churn")[0])
    predict = functions.http("churn", "POST", f"/v1/models/churn{where}:predict", {"instances": examples})
    expected = error(predict, 404, "not_found")
    response = functions.http("churn", "POST", f"/v1/models/churn{where}:{route}", {"examples": examples})
    assert _answer(response) == (404, expected), response["body"]


def test_regress_and_classify_take_only_post(functions: Functions) -> None:
    for route in ("regress", "classify"):
        for where in WHERE:
            path = f"/v1/models/churn{where}:{route}"
            response = functions.http("churn", "GET", path)
            body = error(response, 405, "method_not_allowed")
            assert body["error"] == f"GET is not allowed on {path}: use POST", body
            assert response["headers"]["Allow"] == "POST", response


# --- TF Serving :classify under a version and a label -----------------------------------------------


def test_classify_under_a_version_and_a_label_names_each_score(tmp_path: Path) -> None:
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(x))
    export_model(
        model,
        None,
        {"one": {"instances": [[0.1, 0.2, 0.3]]}},
        tmp_path / "clf",
        name="clf",
        version="7",
        class_names=["stays", "churns"],
        litert_runtime=False,
    )
    handler = _handler(Settings(model_dir=tmp_path / "clf", serving_runtime="tensorflow"))
    examples = [{"x": [1.0, -2.0, 0.5]}, {"x": [0.0, 0.3, -1.0]}]
    p = model.predict(np.array([e["x"] for e in examples]), verbose=0)[:, 0].astype(np.float64)
    for path in ("/v1/models/clf/versions/7:classify", "/v1/models/clf/labels/stable:classify"):
        status, answer = _answer(handler(http_event("http", "POST", path, {"examples": examples}), LambdaContext()))
        assert status == 200 and list(answer) == ["result"], (path, answer)
        labels = [[label for label, _ in example] for example in answer["result"]]
        assert labels == [["stays", "churns"], ["stays", "churns"]], answer
        scores = np.array([[score for _, score in example] for example in answer["result"]])
        np.testing.assert_allclose(scores, np.stack([1 - p, p], axis=1), rtol=1e-5, atol=1e-6)
    wrong = handler(
        http_event("http", "POST", "/v1/models/clf/versions/1:classify", {"examples": examples}), LambdaContext()
    )
    assert _answer(wrong) == (
        404,
        {"error": "version 1 of model 'clf' is not served here: this function serves version 7", "code": "not_found"},
    )


def _handler(settings: Settings) -> Any:
    from handler.app import Function

    function = Function(settings)
    assert function.service is not None, function.startup_error
    return function.handler()


@pytest.mark.parametrize("model", zoo.MODELS)
def test_classify_under_a_version_or_label_of_a_model_without_class_names_is_400(
    model: str, functions: Functions
) -> None:
    for where in WHERE:
        response = functions.http(model, "POST", f"/v1/models/{model}{where}:classify", {"examples": []})
        expected = {"error": f"model '{model}' was exported without class_names: use :predict", "code": "bad_request"}
        assert _answer(response) == (400, expected), response["body"]


# --- KServe v1: readiness and liveness -------------------------------------------------------------


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_model_status_carries_kserve_s_name_and_ready_beside_tf_serving_s(
    model: str, trigger: str, functions: Functions
) -> None:
    ok = {"error_code": "OK", "error_message": ""}
    expected = {
        "name": model,
        "ready": True,
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}],
    }
    for where in WHERE:
        response = functions.http(model, "GET", f"/v1/models/{model}{where}", trigger=trigger)
        assert _answer(response) == (200, expected), response["body"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_root_answers_kserve_s_liveness(trigger: str, functions: Functions) -> None:
    assert _answer(functions.http("churn", "GET", "/", trigger=trigger)) == (200, {"status": "alive"})
    response = functions.http("churn", "POST", "/", {}, trigger=trigger)
    assert error(response, 405, "method_not_allowed")["error"] == "POST is not allowed on /: use GET"


def _cannot_load(artifacts: Artifacts) -> Any:
    raise ModelLoadError(LOAD_FAILURE)


def _failing_api(model: str) -> HttpApi:
    """The model's function, with a runtime whose every load fails (the model is not loaded until asked)."""
    settings = Settings(model_dir=zoo.model_dir(model))
    artifacts = Artifacts.open(settings.model_dir)
    service = Service(artifacts=artifacts, policy=settings.coerce_policy(), model=LazyModel(artifacts, _cannot_load))
    return HttpApi(Started(service), settings)


def _call(api: HttpApi, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return _answer(api.handle("http", http_event("http", method, path, body), LambdaContext()))


def test_a_model_whose_load_failed_is_not_ready_with_the_reason_and_ready_before_any_load() -> None:
    api = _failing_api("churn")
    ok = {"error_code": "OK", "error_message": ""}
    lazy = {
        "name": "churn",
        "ready": True,
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}],
    }
    assert _call(api, "GET", "/v1/models/churn") == (200, lazy)
    assert _call(api, "POST", predict_path("churn"), zoo.cases("churn")[0]["request"])[0] == 503
    # Why, in words safe for any caller: the reason itself (it may name a file or a setting) is in the log.
    failed = {"error_code": "UNAVAILABLE", "error_message": ModelLoadError.public}
    not_ready = {
        "name": "churn",
        "ready": False,
        "model_version_status": [{"version": "1", "state": "START", "status": failed}],
    }
    for where in WHERE:
        assert _call(api, "GET", f"/v1/models/churn{where}") == (200, not_ready)
    assert _call(api, "GET", "/") == (200, {"status": "alive"})
    # Triton's repository index says the same: UNAVAILABLE, with the reason; `ready: true` leaves it out.
    entry = {"name": "churn", "version": "1", "state": "UNAVAILABLE", "reason": ModelLoadError.public}
    assert _call(api, "POST", "/v2/repository/index") == (200, [entry])
    assert _call(api, "POST", "/v2/repository/index", {"ready": True}) == (200, [])

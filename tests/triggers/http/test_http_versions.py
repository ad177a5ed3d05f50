"""TF Serving's version and label routes and OIP v2's version routes name the served version (manifest "1") or a
label of MODEL_LABELS ("stable" by default): golden answers there, 404 for any other; GET /v2 describes the
server; :classify answers 400 for a model exported without class_names (every reference model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support import zoo
from tests.support.functions import Functions
from tests.support.golden_requests import v2_infer_body
from tests.support.http_events import HTTP_TRIGGERS, body_of
from tests.triggers.http.test_http_errors import error


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", ["churn", "reviews"])
def test_the_served_version_and_label_answer_every_golden_case(model: str, trigger: str, functions: Functions) -> None:
    for case in zoo.cases(model):
        for path in (f"/v1/models/{model}/versions/1:predict", f"/v1/models/{model}/labels/stable:predict"):
            response = functions.http(model, "POST", path, case["request"], trigger=trigger)
            assert response["statusCode"] == 200, (path, response["body"])
            zoo.check_v1(model, case, body_of(response), f"{trigger} {path}")
        body = v2_infer_body(model, case)
        if body is not None:
            response = functions.http(model, "POST", f"/v2/models/{model}/versions/1/infer", body, trigger=trigger)
            assert response["statusCode"] == 200, response["body"]
            zoo.check_v2(model, case, body_of(response), f"{trigger} v2 version 1")


@pytest.mark.parametrize(
    ("method", "path", "fragment"),
    [
        ("POST", "/v1/models/digits/versions/2:predict", "version 2 of model 'digits' is not served here"),
        ("POST", "/v1/models/digits/labels/canary:predict", "label 'canary' of model 'digits' is not served here"),
        ("GET", "/v1/models/digits/versions/2", "version 2 of model 'digits' is not served here"),
        ("GET", "/v1/models/digits/labels/canary/metadata", "label 'canary'"),
        ("POST", "/v2/models/digits/versions/2/infer", "version 2 of model 'digits' is not served here"),
        ("GET", "/v2/models/digits/versions/0/ready", "version 0 of model 'digits' is not served here"),
        ("GET", "/v2/models/digits/versions/2", "version 2"),
        ("POST", "/v1/models/churn/versions/1:predict", "model 'churn' is not served here"),
    ],
)
def test_another_version_or_label_is_404(method: str, path: str, fragment: str, functions: Functions) -> None:
    request: Any = zoo.cases("digits")[0]["request"] if method == "POST" else None
    body = error(functions.http("digits", method, path, request), 404, "not_found")
    assert fragment in body["error"], body


@pytest.mark.parametrize("model", zoo.MODELS)
def test_version_and_label_status_and_metadata_are_the_served_model_s(model: str, functions: Functions) -> None:
    plain = body_of(functions.http(model, "GET", f"/v1/models/{model}/metadata"))
    for path in (f"/v1/models/{model}/versions/1/metadata", f"/v1/models/{model}/labels/stable/metadata"):
        response = functions.http(model, "GET", path)
        assert response["statusCode"] == 200 and body_of(response) == plain, (path, response["body"])
    status = body_of(functions.http(model, "GET", f"/v1/models/{model}"))
    assert body_of(functions.http(model, "GET", f"/v1/models/{model}/versions/1")) == status
    v2 = body_of(functions.http(model, "GET", f"/v2/models/{model}"))
    assert body_of(functions.http(model, "GET", f"/v2/models/{model}/versions/1")) == v2
    ready = functions.http(model, "GET", f"/v2/models/{model}/versions/1/ready")
    assert (ready["statusCode"], body_of(ready)) == (200, {"name": model, "ready": True})


def test_v2_server_metadata_names_the_server_and_its_extensions(functions: Functions) -> None:
    response = functions.http("sensor", "GET", "/v2")
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    # As Triton names them; not model_repository: of it only the index is answered, not load and unload.
    extensions = ["binary_tensor_data", "model_configuration", "statistics"]
    assert body["name"] == "skewless" and body["extensions"] == extensions, body
    assert isinstance(body["version"], str) and body["version"], body


@pytest.mark.parametrize("model", zoo.MODELS)
def test_classify_on_a_model_without_class_names_is_400(model: str, functions: Functions) -> None:
    body = error(functions.http(model, "POST", f"/v1/models/{model}:classify", {"examples": []}), 400, "bad_request")
    assert body["error"] == f"model '{model}' was exported without class_names: use :predict", body


def test_v2_output_selection_answers_only_the_outputs_asked_for(functions: Functions) -> None:
    case = next(c for c in zoo.cases("recommender") if c["name"] == "batch_of_16")
    body = v2_infer_body("recommender", case)
    assert body is not None
    body["outputs"] = [{"name": "relevance_score"}]
    answer = body_of(functions.http("recommender", "POST", "/v2/models/recommender/infer", body))
    assert [t["name"] for t in answer["outputs"]] == ["relevance_score"], answer
    tol = zoo.golden("recommender")["tolerance"]
    expected = np.asarray(case["expected"]["relevance_score"])
    assert np.allclose(_tensor(answer, "relevance_score"), expected, atol=tol["atol"], rtol=tol["rtol"]), answer
    body["outputs"] = [{"name": "score"}]
    err = error(functions.http("recommender", "POST", "/v2/models/recommender/infer", body), 400, "bad_request")
    assert "output(s) score are not outputs of this model" in err["error"], err


def _tensor(answer: dict[str, Any], name: str) -> Any:
    (t,) = [t for t in answer["outputs"] if t["name"] == name]
    return np.asarray(t["data"]).reshape(t["shape"])

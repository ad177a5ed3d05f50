"""400, 404, 405 and 413: their exact status and message, in our error shape, under every HTTP trigger."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from handler.bootstrap import Started, open_service
from handler.settings import Settings
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import ARTIFACTS, LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, infer_path, predict_path
from tests.support.http_events import HTTP_TRIGGERS, body_of, header, http_event

PREDICT = predict_path("churn")


def error(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    """The error body, after checking the exact status, the code and the shape of every error answer."""
    assert response["statusCode"] == status, f"expected {status}, got {response['statusCode']}: {response['body']}"
    body = body_of(response)
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"], body
    assert set(body) <= {"error", "code", "details", "details_truncated", "request_id"}, body
    assert "Traceback" not in response["body"] and ".py" not in response["body"], response["body"]
    return body


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("path", [PREDICT, "/predict", infer_path("churn")])
def test_malformed_json_is_400_naming_the_position(trigger: str, path: str, functions: Functions) -> None:
    body = error(functions.http("churn", "POST", path, '{"instances": [1, 2', trigger=trigger), 400, "bad_request")
    assert "not valid JSON" in body["error"] and "position" in body["error"], body


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_a_body_that_is_not_json_is_400_naming_the_content_type_it_came_as(trigger: str, functions: Functions) -> None:
    response = functions.http("churn", "POST", PREDICT, "a=1", trigger=trigger, headers={"Content-Type": "text/csv"})
    body = error(response, 400, "bad_request")
    assert "not valid JSON (sent as Content-Type 'text/csv')" in body["error"], body


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream", "text/csv"]
)
def test_a_json_body_is_taken_whatever_its_content_type(content_type: str, functions: Functions) -> None:
    """TF Serving's own examples send JSON with `curl -d` (form-urlencoded): the body is what counts."""
    case = zoo.cases("recommender")[0]
    headers = {"Content-Type": content_type}
    response = functions.http("recommender", "POST", "/predict", case["request"], headers=headers)
    assert response["statusCode"] == 200, response["body"]
    zoo.check_v1("recommender", case, body_of(response), f"Content-Type {content_type}")


@pytest.mark.parametrize("model", zoo.MODELS)
@pytest.mark.parametrize("text", ["[1, 2, 3]", '"an image"', "42", "true"])
def test_json_that_is_not_an_object_is_400(model: str, text: str, functions: Functions) -> None:
    for path in (predict_path(model), infer_path(model)):
        body = error(functions.http(model, "POST", path, text), 400, "bad_request")
        assert "JSON object" in body["error"], (path, body)


def test_json_null_is_400_saying_null(functions: Functions) -> None:
    body = error(functions.http("churn", "POST", PREDICT, "null"), 400, "bad_request")
    assert "got null" in body["error"], body


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_missing_body_is_400(trigger: str, functions: Functions) -> None:
    body = error(functions.http("churn", "POST", PREDICT, trigger=trigger), 400, "bad_request")
    assert "no body" in body["error"], body


def test_invalid_base64_body_is_400(functions: Functions) -> None:
    event = http_event("http", "POST", PREDICT, "{}")
    event["body"], event["isBase64Encoded"] = "not base64!!", True
    body = error(functions.handler("churn")(event, LambdaContext()), 400, "bad_request")
    assert "base64" in body["error"], body


def test_base64_body_that_is_not_utf8_is_400(functions: Functions) -> None:
    event = http_event("http", "POST", PREDICT, "{}")
    event["body"], event["isBase64Encoded"] = base64.b64encode(b"\xff\xfe{}").decode(), True
    body = error(functions.handler("churn")(event, LambdaContext()), 400, "bad_request")
    assert "not UTF-8 text, so not JSON" in body["error"], body


def test_duplicate_keys_are_400_naming_the_key(functions: Functions) -> None:
    text = '{"instances": [{"image": [], "image": []}]}'
    body = error(functions.http("digits", "POST", predict_path("digits"), text), 400, "bad_request")
    assert "'image' twice" in body["error"], body


def _small_limit_api(limit: int) -> HttpApi:
    settings = Settings(model_dir=ARTIFACTS, max_body_bytes=limit)
    return HttpApi(Started(open_service(settings)), settings)


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("encoded", [False, True])
def test_body_over_max_body_bytes_is_413_before_parsing(trigger: str, encoded: bool) -> None:
    api = _small_limit_api(1000)
    # Not even JSON: the size check comes first.
    event = http_event(trigger, "POST", PREDICT, "x" * 1001, base64_body=encoded)
    body = error(api.handle(trigger, event, LambdaContext()), 413, "payload_too_large")  # type: ignore[arg-type]
    assert "MAX_BODY_BYTES=1000" in body["error"], body


def test_body_at_max_body_bytes_is_accepted() -> None:
    case = zoo.cases("churn")[0]
    text = json.dumps(case["request"])
    api = _small_limit_api(len(text.encode()))
    response = api.handle("http", http_event("http", "POST", PREDICT, text, base64_body=True), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    zoo.check_v1("churn", case, body_of(response), "at MAX_BODY_BYTES")


def test_a_default_limit_image_batch_over_6_mb_is_413(functions: Functions) -> None:
    image = zoo.cases("digits")[0]["request"]["instances"][0]
    text = json.dumps({"instances": [image] * 1500})  # about 6.7 MB of pixels
    assert len(text) > 6 * 1024 * 1024
    body = error(functions.http("digits", "POST", predict_path("digits"), text), 413, "payload_too_large")
    assert "MAX_BODY_BYTES" in body["error"], body


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_unknown_model_name_is_404_naming_the_served_model(model: str, trigger: str, functions: Functions) -> None:
    request = zoo.cases(model)[0]["request"]
    for method, path, body in (
        ("POST", "/v1/models/fraud:predict", request),
        ("GET", "/v1/models/fraud", None),
        ("GET", "/v1/models/fraud/metadata", None),
        ("GET", "/v2/models/fraud", None),
        ("GET", "/v2/models/fraud/ready", None),
        ("POST", "/v2/models/fraud/infer", {"inputs": []}),
    ):
        err = error(functions.http(model, method, path, body, trigger=trigger), 404, "not_found")
        assert "model 'fraud' is not served here" in err["error"] and f"'{model}'" in err["error"], (method, path)


@pytest.mark.parametrize("path", ["/v3/everything", "/v1/models", "/v2/models/churn/infer/extra", "/v2/repository"])
def test_unknown_path_is_404(path: str, functions: Functions) -> None:
    err = error(functions.http("churn", "GET", path), 404, "not_found")
    assert f"GET {path}" in err["error"], err


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_wrong_method_is_405_with_allow_header(trigger: str, functions: Functions) -> None:
    for model, method, path, allow in (
        ("churn", "GET", "/v1/models/churn:predict", "POST"),
        ("churn", "GET", "/predict", "POST"),
        ("churn", "DELETE", "/v1/models/churn", "GET"),
        ("churn", "POST", "/v2/health/ready", "GET"),
        ("churn", "PUT", "/v2/models/churn/infer", "POST"),
        ("digits", "GET", "/v2/models/digits/infer", "POST"),
        ("recommender", "POST", "/v1/models/recommender/metadata", "GET"),
    ):
        response = functions.http(model, method, path, trigger=trigger)
        err = error(response, 405, "method_not_allowed")
        assert header(response, "Allow") == allow, (method, path, response)
        assert f"{method} is not allowed on {path}" in err["error"], err

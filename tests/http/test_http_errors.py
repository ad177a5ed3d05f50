"""Every error status, with its message, in our error shape, under every HTTP trigger."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from http_events import HTTP_TRIGGERS, body_of, header, http_event

from handler.bootstrap import open_service
from handler.core.artifacts import Artifacts
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.errors import ArtifactError, SkewlessError
from handler.settings import Settings
from handler.sources.api import HttpApi

PREDICT = "/v1/models/churn:predict"


def _row(golden: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = golden["cases"][0]["request"]["instances"][0]
    return dict(row)


def _call(app: ModuleType, ctx: Any, trigger: str, method: str, path: str, body: Any = None, **kw: Any) -> dict:
    response: dict[str, Any] = app.lambda_handler(http_event(trigger, method, path, body, **kw), ctx)
    return response


def _error(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    assert response["statusCode"] == status, f"expected {status}, got {response['statusCode']}: {response['body']}"
    body = body_of(response)
    assert body["code"] == code, body
    assert "Traceback" not in response["body"]
    return body


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_malformed_json_is_400_naming_the_position(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    body = _error(_call(app, lambda_context, trigger, "POST", PREDICT, '{"instances": [1, 2'), 400, "bad_request")
    assert "not valid JSON" in body["error"] and "position" in body["error"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_wrong_content_type_is_400(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    response = _call(app, lambda_context, trigger, "POST", PREDICT, "a=1", headers={"Content-Type": "text/csv"})
    body = _error(response, 400, "bad_request")
    assert "text/csv" in body["error"] and "application/json" in body["error"]


def test_form_encoded_body_is_400_not_parsed_as_a_form(app: ModuleType, lambda_context: Any) -> None:
    response = _call(
        app,
        lambda_context,
        "http",
        "POST",
        PREDICT,
        "instances=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _error(response, 400, "bad_request")


def test_json_that_is_not_an_object_is_400(app: ModuleType, lambda_context: Any) -> None:
    body = _error(_call(app, lambda_context, "http", "POST", PREDICT, "[1, 2, 3]"), 400, "bad_request")
    assert "JSON object" in body["error"]


def test_missing_body_is_400(app: ModuleType, lambda_context: Any) -> None:
    body = _error(_call(app, lambda_context, "rest", "POST", PREDICT), 400, "bad_request")
    assert "no body" in body["error"]


def test_invalid_base64_body_is_400(app: ModuleType, lambda_context: Any) -> None:
    event = http_event("http", "POST", PREDICT, "{}")
    event["body"], event["isBase64Encoded"] = "not base64!!", True
    body = _error(app.lambda_handler(event, lambda_context), 400, "bad_request")
    assert "base64" in body["error"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_every_offending_instance_and_feature_is_listed_in_a_422(
    trigger: str, app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    good, missing, wrong = _row(golden), _row(golden), _row(golden)
    del missing["age"]
    wrong["tenure_months"] = "many"
    wrong["contract_type"] = "forever"
    wrong["shoe_size"] = 44
    response = _call(app, lambda_context, trigger, "POST", PREDICT, {"instances": [good, missing, wrong]})
    body = _error(response, 422, "invalid_input")
    found = {(d["instance"], d["feature"]) for d in body["details"]}
    assert found == {(1, "age"), (2, "tenure_months"), (2, "contract_type"), (2, "shoe_size")}, body["details"]
    reasons = {d["feature"]: d["reason"] for d in body["details"]}
    assert reasons["age"] == "is missing"
    assert "must be a number" in reasons["tenure_months"] and "many" not in reasons["tenure_months"]
    assert "not a known category" in reasons["contract_type"] and "forever" not in reasons["contract_type"]
    assert reasons["shoe_size"] == "is not a feature of this model"


def test_pydantic_validation_errors_are_422_in_our_shape(app: ModuleType, lambda_context: Any) -> None:
    response = _call(app, lambda_context, "http", "POST", PREDICT, {"instances": "all of them"})
    body = _error(response, 422, "invalid_input")
    assert body["details"][0]["feature"] == "instances" and "list" in body["details"][0]["reason"]
    assert "statusCode" not in body and "detail" not in body  # not Powertools' default shape

    response = _call(app, lambda_context, "http", "POST", "/v2/models/churn/infer", {"inputs": [{"name": "age"}]})
    body = _error(response, 422, "invalid_input")
    assert {d["feature"] for d in body["details"]} == {"inputs.0.shape", "inputs.0.datatype", "inputs.0.data"}


def test_v2_errors_name_the_tensor(app: ModuleType, lambda_context: Any) -> None:
    tensors = [
        {"name": "age", "shape": [2], "datatype": "FP32", "data": [1.0]},
        {"name": "contract_type", "shape": [1], "datatype": "FP32", "data": [1.0]},
        {"name": "tenure_months", "shape": [1], "datatype": "INT64", "data": [1.5]},
        {"name": "support_calls", "shape": [1], "datatype": "FP99", "data": [1.0]},
    ]
    response = _call(app, lambda_context, "http", "POST", "/v2/models/churn/infer", {"inputs": tensors})
    body = _error(response, 422, "invalid_input")
    reasons = {d["feature"]: d["reason"] for d in body["details"]}
    assert "data has 1 values but shape [2] needs 2" in reasons["age"]
    assert "categorical: send datatype BYTES" in reasons["contract_type"]
    assert "holds integers" in reasons["tenure_months"]
    assert "'FP99' is not one of" in reasons["support_calls"]


def test_v2_missing_feature_tensors_are_listed_by_name(app: ModuleType, lambda_context: Any) -> None:
    tensors = [{"name": "age", "shape": [1], "datatype": "FP32", "data": [40.0]}]
    body = _error(
        _call(app, lambda_context, "http", "POST", "/v2/models/churn/infer", {"inputs": tensors}), 422, "invalid_input"
    )
    missing = {d["feature"] for d in body["details"] if d["reason"] == "is missing"}
    assert "tenure_months" in missing and "contract_type" in missing and "age" not in missing


def test_v2_rows_tensor_with_the_wrong_width_is_422(app: ModuleType, lambda_context: Any) -> None:
    tensors = [{"name": "features", "shape": [1, 3], "datatype": "BYTES", "data": [[1, 2, 3]]}]
    body = _error(
        _call(app, lambda_context, "http", "POST", "/v2/models/churn/infer", {"inputs": tensors}), 422, "invalid_input"
    )
    assert body["details"][0]["feature"] == "features" and "must be [n, 12]" in body["details"][0]["reason"]


def _small_limit_api(limit: int) -> HttpApi:
    settings = Settings(max_body_bytes=limit)
    return HttpApi(open_service(settings), settings)


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("encoded", [False, True])
def test_body_over_max_body_bytes_is_413_before_parsing(trigger: str, encoded: bool, lambda_context: Any) -> None:
    api = _small_limit_api(1000)
    # Not even JSON: the size check comes first.
    event = http_event(trigger, "POST", PREDICT, "x" * 1001, base64_body=encoded)
    body = _error(api.handle(trigger, event, lambda_context), 413, "payload_too_large")  # type: ignore[arg-type]
    assert "MAX_BODY_BYTES=1000" in body["error"]


def test_body_at_max_body_bytes_is_accepted(golden: dict[str, Any], lambda_context: Any) -> None:
    text = json.dumps(golden["cases"][0]["request"])
    api = _small_limit_api(len(text.encode()))
    response = api.handle("http", http_event("http", "POST", PREDICT, text, base64_body=True), lambda_context)
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_unknown_model_name_is_404(trigger: str, app: ModuleType, golden: dict[str, Any], lambda_context: Any) -> None:
    for method, path, body in (
        ("POST", "/v1/models/fraud:predict", golden["cases"][0]["request"]),
        ("GET", "/v1/models/fraud", None),
        ("GET", "/v1/models/fraud/metadata", None),
        ("GET", "/v2/models/fraud", None),
        ("POST", "/v2/models/fraud/infer", {"inputs": []}),
    ):
        err = _error(_call(app, lambda_context, trigger, method, path, body), 404, "not_found")
        assert "model 'fraud' is not served here" in err["error"] and "'churn'" in err["error"], (method, path)


def test_unknown_path_is_404(app: ModuleType, lambda_context: Any) -> None:
    err = _error(_call(app, lambda_context, "http", "GET", "/v3/everything"), 404, "not_found")
    assert "GET /v3/everything" in err["error"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_wrong_method_is_405_with_allow_header(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    for method, path, allow in (
        ("GET", "/v1/models/churn:predict", "POST"),
        ("GET", "/predict", "POST"),
        ("DELETE", "/v1/models/churn", "GET"),
        ("POST", "/v2/health/ready", "GET"),
        ("PUT", "/v2/models/churn/infer", "POST"),
    ):
        response = _call(app, lambda_context, trigger, method, path)
        err = _error(response, 405, "method_not_allowed")
        assert header(response, "Allow") == allow, (method, path, response)
        assert f"{method} is not allowed on {path}" in err["error"]


class _Broken(Exception):
    """Stands for a bug of ours deep in the model runtime."""


def _broken_loader(artifacts: Artifacts) -> Any:
    def forward(x: np.ndarray) -> np.ndarray:
        raise _Broken("secret internals /opt/python/site-packages/foo.py line 42")

    return forward


def test_our_own_fault_is_500_with_request_id_and_no_stack_trace(
    golden: dict[str, Any], lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings()
    artifacts = Artifacts.open(settings.model_dir)
    service = Service(artifacts=artifacts, policy=settings.coerce_policy(), model=LazyModel(artifacts, _broken_loader))
    api = HttpApi(service, settings)
    for trigger in HTTP_TRIGGERS:
        event = http_event(trigger, "POST", PREDICT, golden["cases"][0]["request"])
        response = api.handle(trigger, event, lambda_context)  # type: ignore[arg-type]
        body = _error(response, 500, "internal_error")
        assert body["request_id"] == lambda_context.aws_request_id
        assert "secret internals" not in response["body"] and "_Broken" not in response["body"]
    # ...the stack trace is in the log, for us.
    assert any(r.exc_info and r.exc_info[0] is _Broken for r in caplog.records)


def test_invalid_artifacts_answer_503_and_not_ready(
    artifacts_copy: Path, golden: dict[str, Any], lambda_context: Any
) -> None:
    (artifacts_copy / "preprocessing.json").write_text((artifacts_copy / "preprocessing.json").read_text() + " ")
    settings = Settings(model_dir=artifacts_copy)
    with pytest.raises(ArtifactError) as caught:
        open_service(settings)
    api = HttpApi(None, settings, caught.value)
    response = api.handle("http", http_event("http", "POST", PREDICT, golden["cases"][0]["request"]), lambda_context)
    body = _error(response, 503, "artifacts_invalid")
    assert "preprocessing.json does not match manifest.json" in body["error"] and body["request_id"]
    ready = api.handle("http", http_event("http", "GET", "/v2/health/ready"), lambda_context)
    assert ready["statusCode"] == 503 and "preprocessing.json" in body_of(ready)["reason"]
    live = api.handle("http", http_event("http", "GET", "/v2/health/live"), lambda_context)
    assert live["statusCode"] == 200


def test_model_load_error_is_503(golden: dict[str, Any], lambda_context: Any) -> None:
    from handler.errors import ModelLoadError

    def cannot_load(artifacts: Artifacts) -> Any:
        raise ModelLoadError("the model uses custom object(s) skewless>Temperature that are not registered")

    settings = Settings()
    artifacts = Artifacts.open(settings.model_dir)
    api = HttpApi(
        Service(artifacts=artifacts, policy=settings.coerce_policy(), model=LazyModel(artifacts, cannot_load)), settings
    )
    response = api.handle("http", http_event("http", "POST", PREDICT, golden["cases"][0]["request"]), lambda_context)
    body = _error(response, 503, "model_unavailable")
    assert "skewless>Temperature" in body["error"]


@pytest.mark.parametrize(
    "event",
    [
        {"instances": []},
        {"instances": [[1, 2, 3]]},
        {"rows": [1]},
        {},
        [1, 2, 3],
        "predict please",
        None,
    ],
)
def test_invalid_direct_invoke_returns_an_error_object_and_does_not_raise(
    event: Any, app: ModuleType, lambda_context: Any
) -> None:
    answer = app.lambda_handler(event, lambda_context)
    assert isinstance(answer, dict) and answer["code"] == "invalid_input" and answer["status"] == 422, answer
    assert answer["error"] and isinstance(answer["details"], list)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


def test_error_messages_are_not_logged_with_request_values(
    app: ModuleType, golden: dict[str, Any], lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    row = _row(golden)
    row["payment_method"] = 12345.678  # a value we can look for in the logs
    row["monthly_charges"] = 98765.4321
    response = _call(app, lambda_context, "http", "POST", PREDICT, {"instances": [row]})
    assert response["statusCode"] == 422
    logged = _logged(caplog)
    assert "98765.4321" not in logged and "12345.678" not in logged
    assert "invalid_input" in logged  # the rejection itself is logged


def test_request_values_are_logged_only_when_asked(
    golden: dict[str, Any], lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    row = _row(golden)
    row["monthly_charges"] = 98765.4321
    settings = Settings(log_request_values=True)
    api = HttpApi(open_service(settings), settings)
    api.handle("http", http_event("http", "POST", PREDICT, {"instances": [row]}), lambda_context)
    assert "98765.4321" in _logged(caplog)


def test_errors_raised_by_our_error_types_keep_their_status(lambda_context: Any) -> None:
    # A SkewlessError subclass nobody mapped still answers with its own status, in our shape.
    class Teapot(SkewlessError):
        status = 418
        code = "teapot"

    settings = Settings()
    api = HttpApi(None, settings, Teapot("short and stout"))
    body = _error(api.handle("alb", http_event("alb", "GET", "/v1/models/churn"), lambda_context), 418, "teapot")
    assert body["error"] == "short and stout"


def test_base64_body_that_is_not_utf8_is_400(app: ModuleType, lambda_context: Any) -> None:
    event = http_event("http", "POST", PREDICT, "{}")
    event["body"], event["isBase64Encoded"] = base64.b64encode(b"\xff\xfe{}").decode(), True
    _error(app.lambda_handler(event, lambda_context), 400, "bad_request")

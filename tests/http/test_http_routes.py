"""Status, metadata and health routes; the OpenAPI document; telling triggers apart; metrics."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from http_events import HTTP_TRIGGERS, body_of, http_event, sample_event
from openapi_spec_validator import validate

from handler.core.golden import compare
from handler.sources.api import ROUTES


def _get(app: ModuleType, ctx: Any, trigger: str, path: str) -> tuple[int, Any]:
    response = app.lambda_handler(http_event(trigger, "GET", path), ctx)
    return response["statusCode"], body_of(response)


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_tf_serving_model_status_and_metadata(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    status, body = _get(app, lambda_context, trigger, "/v1/models/churn")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    status, body = _get(app, lambda_context, trigger, "/v1/models/churn/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "churn", "signature_name": "serving_default", "version": "1"}
    assert body["metadata"]["signature_def"]["inputs"]["shape"] == [None, 19]
    assert [f["name"] for f in body["metadata"]["raw_features"]][:2] == ["tenure_months", "monthly_charges"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_open_inference_v2_health_and_model_metadata(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    assert _get(app, lambda_context, trigger, "/v2/health/live") == (200, {"live": True})
    status, body = _get(app, lambda_context, trigger, "/v2/health/ready")
    assert status == 200 and body["ready"] is True and body["model"] == "churn"
    assert _get(app, lambda_context, trigger, "/v2/models/churn/ready") == (200, {"name": "churn", "ready": True})
    status, body = _get(app, lambda_context, trigger, "/v2/models/churn")
    assert status == 200 and body["name"] == "churn" and body["versions"] == ["1"]
    inputs = {t["name"]: t for t in body["inputs"]}
    assert inputs["contract_type"]["datatype"] == "BYTES" and inputs["age"]["datatype"] == "FP64"
    assert body["outputs"] == [{"name": "churn_probability", "datatype": "FP32", "shape": [-1, 1]}]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_openapi_document_is_valid_and_lists_every_route(trigger: str, app: ModuleType, lambda_context: Any) -> None:
    response = app.lambda_handler(http_event(trigger, "GET", "/openapi.json"), lambda_context)
    assert response["statusCode"] == 200
    doc = json.loads(response["body"])
    validate(doc)
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    expected = {(m, r.replace("<name>", "{name}")) for m, r in ROUTES if r != "/openapi.json"}
    assert listed == expected, f"missing {expected - listed}, extra {listed - expected}"
    predict = doc["paths"]["/v1/models/{name}:predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert {"413", "400", "404", "500", "503"} <= set(predict["responses"])


@pytest.mark.parametrize(
    ("name", "trigger"),
    [
        ("api_gateway_rest.json", "rest"),
        ("http_api.json", "http"),
        ("function_url.json", "function_url"),
        ("alb.json", "alb"),
        ("direct.json", "direct"),
        ("s3_put.json", "s3"),
        ("s3_eventbridge.json", "eventbridge_s3"),
        ("sqs.json", "sqs"),
    ],
)
def test_each_sample_event_is_told_apart_by_its_shape(name: str, trigger: str, app: ModuleType) -> None:
    assert app.event_trigger(sample_event(name)) == trigger


def test_v1_payload_from_an_http_api_is_answered_by_the_rest_resolver(
    app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    # HTTP APIs with payload format 1.0 send the REST shape with "version": "1.0".
    event = http_event("rest", "POST", "/predict", golden["cases"][0]["request"])
    event["version"] = "1.0"
    assert app.event_trigger(event) == "rest"
    assert app.lambda_handler(event, lambda_context)["statusCode"] == 200


def test_per_trigger_entry_points_answer_their_events(
    app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    case = golden["cases"][0]
    for handler, trigger in (
        (app.rest_api_handler, "rest"),
        (app.http_api_handler, "http"),
        (app.function_url_handler, "function_url"),
        (app.alb_handler, "alb"),
    ):
        response = handler(http_event(trigger, "POST", "/predict", case["request"]), lambda_context)
        ok, _, detail = compare(case["response"], body_of(response), 1e-5, 1e-5)
        assert ok, f"{trigger}: {detail}"
    ok, _, detail = compare(case["response"], app.direct_handler(case["request"], lambda_context), 1e-5, 1e-5)
    assert ok, f"direct: {detail}"


def _emf(out: str) -> dict[str, Any]:
    """Metric name -> value, from the EMF lines printed on stdout."""
    found: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            doc = json.loads(line)
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for m in directive["Metrics"]:
                    found[m["Name"]] = doc[m["Name"]]
    return found


def test_predictions_emit_inference_time_and_batch_size(
    app: ModuleType, golden: dict[str, Any], lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in golden["cases"] if c["name"] == "batch_of_100")
    capsys.readouterr()
    app.lambda_handler(http_event("http", "POST", "/predict", case["request"]), lambda_context)
    metrics = _emf(capsys.readouterr().out)
    assert metrics["BatchSize"] == [100.0] and metrics["InferenceTime"][0] > 0


def test_rejected_requests_are_counted_by_status(
    app: ModuleType, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    app.lambda_handler(http_event("http", "POST", "/predict", {"instances": []}), lambda_context)
    metrics = _emf(capsys.readouterr().out)
    assert metrics["RejectedRequests"] == [1.0] and metrics["Rejected422"] == [1.0]
    assert "InferenceTime" not in metrics

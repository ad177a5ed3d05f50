"""Status, metadata and health routes of every reference model; the OpenAPI document; telling triggers apart;
per-trigger entry points; metrics."""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import Functions
from tests.support.http_events import HTTP_TRIGGERS, body_of, http_event, sample_event

# Written out from the TF Serving and OIP v2 documentation (DESIGN.md's table), not from the server's code.
TF_DTYPES = {
    "float64": "DT_DOUBLE",
    "float32": "DT_FLOAT",
    "string": "DT_STRING",
    "uint8": "DT_UINT8",
    "int32": "DT_INT32",
}
OIP_DTYPES = {"float64": "FP64", "float32": "FP32", "string": "BYTES", "uint8": "UINT8", "int32": "INT32"}


def _get(functions: Functions, model: str, trigger: str, path: str) -> tuple[int, Any]:
    response = functions.http(model, "GET", path, trigger=trigger)
    return response["statusCode"], body_of(response)


def _tf_tensor(spec: dict[str, Any]) -> tuple[str, list[str]]:
    return TF_DTYPES[spec["dtype"]], ["-1", *(str(d) for d in spec["shape"])]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_tf_serving_model_status_and_metadata(model: str, trigger: str, functions: Functions) -> None:
    status, body = _get(functions, model, trigger, f"/v1/models/{model}")
    ok = {"error_code": "OK", "error_message": ""}
    versions = [{"version": "1", "state": "AVAILABLE", "status": ok}]
    assert (status, body) == (200, {"name": model, "ready": True, "model_version_status": versions})
    status, body = _get(functions, model, trigger, f"/v1/models/{model}/metadata")
    assert status == 200, body
    assert body["model_spec"] == {"name": model, "signature_name": "", "version": "1"}
    assert list(body["metadata"]["signature_def"]) == ["signature_def"]
    signature_def = body["metadata"]["signature_def"]["signature_def"]
    assert list(signature_def) == ["serving_default"]
    serving = signature_def["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    sig = zoo.manifest(model)["signature"]
    for side, specs in (("inputs", sig["features"]), ("outputs", sig["outputs"])):
        # What a client sends (the raw features, in order) and what it gets back.
        assert list(serving[side]) == [s["name"] for s in specs], (side, list(serving[side]))
        for s in specs:
            info = serving[side][s["name"]]
            got = (info["dtype"], [d["size"] for d in info["tensor_shape"]["dim"]])
            assert got == _tf_tensor(s), (model, side, s["name"], info)
            assert info["tensor_shape"]["unknown_rank"] is False and isinstance(info["name"], str)


def test_metadata_of_churn_lists_its_twelve_raw_features(functions: Functions) -> None:
    _, body = _get(functions, "churn", "http", "/v1/models/churn/metadata")
    inputs = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert list(inputs)[:2] == ["tenure_months", "monthly_charges"] and len(inputs) == 12
    assert inputs["contract_type"]["dtype"] == "DT_STRING" and inputs["age"]["dtype"] == "DT_DOUBLE"
    outputs = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert list(outputs) == ["output_0"]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_open_inference_v2_health_and_model_metadata(model: str, trigger: str, functions: Functions) -> None:
    assert _get(functions, model, trigger, "/v2/health/live") == (200, {"live": True})
    status, body = _get(functions, model, trigger, "/v2/health/ready")
    assert status == 200 and body["ready"] is True and body["model"] == model, body
    assert _get(functions, model, trigger, f"/v2/models/{model}/ready") == (200, {"name": model, "ready": True})
    status, body = _get(functions, model, trigger, f"/v2/models/{model}")
    assert status == 200 and body["name"] == model and body["versions"] == ["1"], body
    sig = zoo.manifest(model)["signature"]

    def tensors(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": s["name"], "datatype": OIP_DTYPES[s["dtype"]], "shape": [-1, *s["shape"]]} for s in specs]

    assert body["inputs"] == tensors(sig["features"]), body["inputs"]
    assert body["outputs"] == tensors(sig["outputs"]), body["outputs"]


def test_v2_metadata_of_churn_names_its_rows_tensor(functions: Functions) -> None:
    _, body = _get(functions, "churn", "http", "/v2/models/churn")
    rows = body["parameters"]["rows_input"]
    assert rows == {"name": "features", "datatype": "BYTES", "shape": [-1, 12]}
    assert body["parameters"]["feature_order"] == zoo.feature_names("churn")
    for model in zoo.ZOO:  # models whose features are not all scalars have no rows tensor
        assert "parameters" not in _get(functions, model, "http", f"/v2/models/{model}")[1]


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_openapi_document_is_valid_and_lists_every_route(trigger: str, app: ModuleType) -> None:
    from handler.triggers.http import endpoints_v1, endpoints_v2

    ROUTES = [(r.method, r.rule) for r in endpoints_v1.ROUTES + endpoints_v2.ROUTES]

    response = app.lambda_handler(http_event(trigger, "GET", "/openapi.json"), LambdaContext())
    assert response["statusCode"] == 200
    doc = json.loads(response["body"])
    validate(doc)
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    expected = {(m, re.sub(r"<(\w+)>", r"{\1}", r)) for m, r in ROUTES if r != "/openapi.json"}
    assert listed == expected, f"missing {expected - listed}, extra {listed - expected}"
    # Written out: the routes the README and DESIGN.md promise.
    assert {
        ("POST", "/v1/models/{name}:predict"),
        ("POST", "/predict"),
        ("GET", "/v1/models/{name}"),
        ("GET", "/v1/models/{name}/metadata"),
        ("POST", "/v2/models/{name}/infer"),
        ("GET", "/v2/models/{name}"),
        ("GET", "/v2/models/{name}/ready"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
    } <= listed
    predict = doc["paths"]["/v1/models/{name}:predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert {"400", "404", "413", "422", "500", "503"} <= set(predict["responses"])


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


def test_v1_payload_from_an_http_api_is_answered_by_the_rest_resolver(app: ModuleType) -> None:
    # HTTP APIs with payload format 1.0 send the REST shape with "version": "1.0".
    case = zoo.cases("churn")[0]
    event = http_event("rest", "POST", "/predict", case["request"])
    event["version"] = "1.0"
    assert app.event_trigger(event) == "rest"
    response = app.lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    zoo.check_v1("churn", case, body_of(response), "HTTP API payload 1.0")


def test_per_trigger_entry_points_answer_their_events(app: ModuleType) -> None:
    case = zoo.cases("churn")[0]
    for handler, trigger in (
        (app.rest_api_handler, "rest"),
        (app.http_api_handler, "http"),
        (app.function_url_handler, "function_url"),
        (app.alb_handler, "alb"),
    ):
        response = handler(http_event(trigger, "POST", "/predict", case["request"]), LambdaContext())
        assert response["statusCode"] == 200, (trigger, response["body"])
        zoo.check_v1("churn", case, body_of(response), f"{trigger} entry point")
    zoo.check_v1("churn", case, app.direct_handler(case["request"], LambdaContext()), "direct entry point")


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


@pytest.mark.parametrize(("model", "case_name", "n"), [("churn", "batch_of_100", 100), ("digits", "batch_of_8", 8)])
def test_predictions_emit_inference_time_and_batch_size(
    model: str, case_name: str, n: int, functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in zoo.cases(model) if c["name"] == case_name)
    functions.http(model, "POST", "/predict", case["request"])  # the first call may load the model
    capsys.readouterr()
    functions.http(model, "POST", "/predict", case["request"])
    metrics = _emf(capsys.readouterr().out)
    assert metrics["BatchSize"] == [float(n)] and metrics["InferenceTime"][0] > 0, metrics


def test_rejected_requests_are_counted_by_status(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    app.lambda_handler(http_event("http", "POST", "/predict", {"instances": []}), LambdaContext())
    metrics = _emf(capsys.readouterr().out)
    assert metrics["RejectedRequests"] == [1.0] and metrics["Rejected422"] == [1.0], metrics
    assert "InferenceTime" not in metrics
    app.lambda_handler(http_event("http", "POST", "/predict", "[1, 2"), LambdaContext())
    metrics = _emf(capsys.readouterr().out)
    assert metrics["RejectedRequests"] == [1.0] and metrics["Rejected400"] == [1.0], metrics

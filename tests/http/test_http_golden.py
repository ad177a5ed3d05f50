"""Every golden case, through every HTTP trigger's event format, direct invoke and OIP v2, gives the golden outputs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
from http_events import HTTP_TRIGGERS, body_of, http_event, sample_event

from handler.core.golden import compare
from handler.preprocessing import CategoricalFeature

PREDICT_PATHS = ("/v1/models/churn:predict", "/predict")


def _check(golden: dict[str, Any], case: dict[str, Any], actual: Any, how: str) -> None:
    tol = golden["tolerance"]
    ok, diff, detail = compare(case["response"], actual, tol["atol"], tol["rtol"])
    assert ok, f"{case['name']} via {how} differs from training: {detail} (max |diff| {diff:.3g})"


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_every_golden_case_through_each_http_trigger_gives_golden_outputs(
    trigger: str, app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    for i, case in enumerate(golden["cases"]):
        path = PREDICT_PATHS[i % 2]  # both v1 routes, alternately
        response = app.lambda_handler(http_event(trigger, "POST", path, case["request"]), lambda_context)
        assert response["statusCode"] == 200, f"{case['name']} via {trigger} {path}: {response['body']}"
        _check(golden, case, body_of(response), f"{trigger} POST {path}")


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_base64_encoded_bodies_give_golden_outputs(
    trigger: str, app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    case = golden["cases"][2]
    event = http_event(trigger, "POST", "/v1/models/churn:predict", case["request"], base64_body=True)
    response = app.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response["body"]
    _check(golden, case, body_of(response), f"{trigger} base64")


def test_every_golden_case_by_direct_invoke_gives_golden_outputs(
    app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    for case in golden["cases"]:
        _check(golden, case, app.lambda_handler(case["request"], lambda_context), "direct invoke")


def test_sample_events_answer_with_golden_outputs(app: ModuleType, golden: dict[str, Any], lambda_context: Any) -> None:
    case = next(c for c in golden["cases"] if c["request"] == sample_event("direct.json"))
    for name in ("api_gateway_rest.json", "http_api.json", "function_url.json", "alb.json"):
        response = app.lambda_handler(sample_event(name), lambda_context)
        assert response["statusCode"] == 200, f"events/{name}: {response}"
        _check(golden, case, body_of(response), f"events/{name}")
    _check(golden, case, app.lambda_handler(sample_event("direct.json"), lambda_context), "events/direct.json")


# --- Open Inference Protocol v2 ----------------------------------------------------------------


def _numeric_type(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    return "FP64"


def v2_body(request: dict[str, Any], features: list[Any]) -> dict[str, Any]:
    """The same examples as a v1 golden request, as OIP v2 tensors (per feature, or ordered rows)."""
    names = [f.name for f in features]
    payload = request.get("instances", request.get("inputs"))
    if isinstance(payload, dict):  # columns, batched or a single example
        rows = (
            [dict(zip(payload, vals, strict=True)) for vals in zip(*payload.values(), strict=True)]
            if all(isinstance(v, list) for v in payload.values())
            else [payload]
        )
    elif payload and not isinstance(payload[0], (list, dict)):
        rows = [dict(zip(names, payload, strict=True))]  # one ordered example
    else:
        rows = [r if isinstance(r, dict) else dict(zip(names, r, strict=True)) for r in payload]
    has_strings = any(
        isinstance(r[f.name], str) for r in rows for f in features if not isinstance(f, CategoricalFeature)
    )
    if has_strings or isinstance(payload, list) and payload and isinstance(payload[0], list):
        # Ordered rows in one BYTES tensor: JSON strings and numbers mixed, as clients send them.
        data = [[r[n] for n in names] for r in rows]
        return {
            "id": "golden",
            "inputs": [{"name": "features", "shape": [len(rows), len(names)], "datatype": "BYTES", "data": data}],
        }
    tensors = []
    for f in features:
        values = [r[f.name] for r in rows]
        datatype = "BYTES" if isinstance(f, CategoricalFeature) else _numeric_type(values)
        tensors.append({"name": f.name, "shape": [len(rows)], "datatype": datatype, "data": values})
    return {"id": "golden", "inputs": tensors}


@pytest.mark.parametrize("trigger", ["http", "rest"])
def test_every_golden_case_through_v2_infer_gives_golden_outputs(
    trigger: str, app: ModuleType, golden: dict[str, Any], lambda_context: Any
) -> None:
    features = list(app.service.artifacts.preprocessor.features)
    tol = golden["tolerance"]
    for case in golden["cases"]:
        body = v2_body(case["request"], features)
        response = app.lambda_handler(http_event(trigger, "POST", "/v2/models/churn/infer", body), lambda_context)
        assert response["statusCode"] == 200, f"{case['name']}: {response['body']}"
        answer = body_of(response)
        assert answer["model_name"] == "churn" and answer["id"] == "golden"
        (out,) = answer["outputs"]
        assert out["name"] == "churn_probability" and out["datatype"] == "FP32"
        expected = np.asarray(next(iter(case["response"].values())), dtype=np.float64).reshape(-1, 1)
        assert out["shape"] == list(expected.shape), f"{case['name']}: shape {out['shape']}"
        actual = np.asarray(out["data"]).reshape(out["shape"])
        ok, diff, detail = compare({"y": expected.tolist()}, {"y": actual.tolist()}, tol["atol"], tol["rtol"])
        assert ok, f"{case['name']} via v2 infer differs from training: {detail}"


def test_v2_tensors_of_shape_n_by_1_are_accepted(app: ModuleType, golden: dict[str, Any], lambda_context: Any) -> None:
    features = list(app.service.artifacts.preprocessor.features)
    case = golden["cases"][2]
    body = v2_body(case["request"], features)
    for t in body["inputs"]:
        t["shape"] = [t["shape"][0], 1]
        t["data"] = [[v] for v in t["data"]]
    response = app.lambda_handler(http_event("http", "POST", "/v2/models/churn/infer", body), lambda_context)
    assert response["statusCode"] == 200, response["body"]
    expected = case["response"]["predictions"]
    assert np.allclose(np.asarray(body_of(response)["outputs"][0]["data"]).reshape(-1, 1), expected, atol=1e-5)

"""Triton's extensions that tritonclient calls (issue 20): model configuration (get_model_config), statistics
(get_inference_statistics) and the repository index (get_model_repository_index), in the JSON shapes of Triton's
protocol extension documents (extension_model_configuration, extension_statistics, extension_model_repository).
Expected values come from the committed manifests and goldens, never from the server's code."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from handler.bootstrap import Started
from handler.core.artifacts import Artifacts
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, infer_path, predict_path
from tests.support.golden_requests import rows_of, v2_infer_body
from tests.support.http_events import HTTP_TRIGGERS, body_of, http_event
from tests.triggers.http.test_http_errors import error

# Written out from Triton's model_config.proto (DataType), not from the server's code.
TRITON_TYPES = {
    "float64": "TYPE_FP64",
    "float32": "TYPE_FP32",
    "string": "TYPE_STRING",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
}
ZERO = {"count": 0, "ns": 0}


def _answer(response: dict[str, Any]) -> tuple[int, Any]:
    return response["statusCode"], body_of(response)


# --- Triton: model configuration ----------------------------------------------------------------------


def _triton_tensor(spec: dict[str, Any]) -> dict[str, Any]:
    """model_config.proto's ModelInput/ModelOutput with max_batch_size > 0: dims per example; a scalar is [1]
    reshaped to [] (Triton's documented way to give a model a tensor without dimensions)."""
    tensor: dict[str, Any] = {"name": spec["name"], "data_type": TRITON_TYPES[spec["dtype"]]}
    if spec["shape"]:
        tensor["dims"] = [-1 if d is None else d for d in spec["shape"]]
    else:
        tensor.update(dims=[1], reshape={"shape": []})
    return tensor


@pytest.mark.parametrize("model", zoo.MODELS)
def test_triton_model_config_lists_each_feature_and_output(model: str, functions: Functions) -> None:
    sig = zoo.manifest(model)["signature"]
    expected = {
        "name": model,
        "platform": "skewless_tensorflow",
        "backend": "skewless",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": 1024,  # MAX_BATCH_SIZE's default (README)
        "input": [{**_triton_tensor(f), "format": "FORMAT_NONE", "optional": False} for f in sig["features"]],
        "output": [_triton_tensor(o) for o in sig["outputs"]],
        "instance_group": [{"name": f"{model}_0", "kind": "KIND_CPU", "count": 1}],
        "default_model_filename": "model.keras",
    }
    for path in (f"/v2/models/{model}/config", f"/v2/models/{model}/versions/1/config"):
        assert _answer(functions.http(model, "GET", path)) == (200, expected), path
    litert = functions.http(model, "GET", f"/v2/models/{model}/config", runtime="litert")
    want = {**expected, "platform": "skewless_litert", "default_model_filename": "model.tflite"}
    assert _answer(litert) == (200, want)


def test_triton_config_of_another_version_or_model_is_404(functions: Functions) -> None:
    for path, message in (
        ("/v2/models/churn/versions/2/config", "version 2 of model 'churn' is not served here"),
        ("/v2/models/fraud/config", "model 'fraud' is not served here"),
        ("/v2/models/churn/versions/2/stats", "version 2 of model 'churn' is not served here"),
        ("/v2/models/fraud/stats", "model 'fraud' is not served here"),
    ):
        body = error(functions.http("churn", "GET", path), 404, "not_found")
        assert body["error"].startswith(message), (path, body)


# --- Triton: statistics ---------------------------------------------------------------------------------


def _stats(get: Any, path: str = "/v2/models/churn/stats") -> dict[str, Any]:
    status, body = _answer(get(path))
    assert status == 200 and list(body) == ["model_stats"] and len(body["model_stats"]) == 1, body
    stat: dict[str, Any] = body["model_stats"][0]
    return stat


def _case(name: str) -> dict[str, Any]:
    return next(c for c in zoo.cases("churn") if c["name"] == name)


def _delta(after: dict[str, Any], before: dict[str, Any], *keys: str) -> int:
    a, b = after, before
    for k in keys:
        a, b = a[k], b[k]
    return int(a) - int(b)


def _batches(stat: dict[str, Any]) -> dict[int, int]:
    return {b["batch_size"]: b["compute_infer"]["count"] for b in stat["batch_stats"]}


def test_statistics_count_every_inference_by_examples_and_executions(functions: Functions) -> None:
    def get(path: str) -> dict[str, Any]:
        return functions.http("churn", "GET", path)

    functions.http("churn", "POST", predict_path("churn"), zoo.cases("churn")[0]["request"])  # the model is loaded
    before = _stats(get)
    started_ms = time.time_ns() // 1_000_000
    three, thirty_two, one = (
        _case(n) for n in ("named_features_shuffled_keys_2", "batch_of_32_shuffled_keys", "batch_of_1")
    )
    requests = [
        (predict_path("churn"), three["request"]),  # TF Serving predict: 3 examples
        (infer_path("churn"), v2_infer_body("churn", thirty_two)),  # OIP v2 infer: 32
        ("/v1/models/churn/versions/1:regress", {"examples": rows_of("churn", one)}),  # regress: 1
        ("/predict", three["request"]),  # 3 again
    ]
    for path, body in requests:
        assert functions.http("churn", "POST", path, body)["statusCode"] == 200, path
    # A body the coercer refuses never reaches the model: no inference request, by Triton's count or ours.
    assert functions.http("churn", "POST", "/predict", {"instances": [{"age": "old"}]})["statusCode"] == 422
    after = _stats(get)
    assert (after["name"], after["version"]) == ("churn", "1")
    assert _delta(after, before, "inference_count") == 3 + 32 + 1 + 3
    assert _delta(after, before, "execution_count") == 4
    assert _delta(after, before, "inference_stats", "success", "count") == 4
    assert _delta(after, before, "inference_stats", "fail", "count") == 0
    for part in ("success", "compute_input", "compute_infer", "compute_output"):
        assert _delta(after, before, "inference_stats", part, "count") == 4, part
        assert _delta(after, before, "inference_stats", part, "ns") > 0, part
    stats = after["inference_stats"]
    assert stats["compute_infer"]["ns"] < stats["success"]["ns"], stats  # the model call is part of each request
    assert stats["queue"] == stats["cache_hit"] == stats["cache_miss"] == ZERO, stats  # no queue, no cache here
    grew = {n: c - _batches(before).get(n, 0) for n, c in _batches(after).items()}
    assert {n: c for n, c in grew.items() if c} == {3: 2, 32: 1, 1: 1}, grew
    assert started_ms <= after["last_inference"] <= time.time_ns() // 1_000_000, after["last_inference"]
    assert list(after) == [
        "name",
        "version",
        "last_inference",
        "inference_count",
        "execution_count",
        "inference_stats",
        "batch_stats",
    ]
    # Every model, this model, this version: one model served, the same statistics.
    assert _stats(get, "/v2/models/stats") == after == _stats(get, "/v2/models/churn/versions/1/stats")


def _api(model: str, loader: Any) -> HttpApi:
    settings = Settings(model_dir=zoo.model_dir(model))
    artifacts = Artifacts.open(settings.model_dir)
    service = Service(artifacts=artifacts, policy=settings.coerce_policy(), model=LazyModel(artifacts, loader))
    return HttpApi(Started(service), settings)


def _nan_answers(artifacts: Artifacts) -> Any:
    def forward(inputs: Any) -> Any:
        return {"output_0": np.full((len(next(iter(inputs.values()))), 1), np.nan, dtype=np.float32)}

    return forward


def _cannot_load(artifacts: Artifacts) -> Any:
    from handler.errors import ModelLoadError

    raise ModelLoadError("the model uses custom object(s) skewless>Temperature that are not registered")


@pytest.mark.parametrize(("loader", "status"), [(_cannot_load, 503), (_nan_answers, 422)])
def test_a_request_that_reaches_the_model_and_gets_no_answer_is_a_failure(loader: Any, status: int) -> None:
    api = _api("churn", loader)

    def get(path: str) -> dict[str, Any]:
        return api.handle("http", http_event("http", "GET", path), LambdaContext())

    before = _stats(get)
    case = _case("named_features_shuffled_keys_2")
    for path, body in ((predict_path("churn"), case["request"]), (infer_path("churn"), v2_infer_body("churn", case))):
        assert api.handle("http", http_event("http", "POST", path, body), LambdaContext())["statusCode"] == status
    after = _stats(get)
    assert _delta(after, before, "inference_stats", "fail", "count") == 2
    assert _delta(after, before, "inference_stats", "fail", "ns") > 0
    for counted in (("inference_count",), ("execution_count",), ("inference_stats", "success", "count")):
        assert _delta(after, before, *counted) == 0, counted


# --- Triton: repository index ----------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_repository_index_lists_the_served_model_ready(model: str, trigger: str, functions: Functions) -> None:
    expected = (200, [{"name": model, "version": "1", "state": "READY"}])
    for body in (None, {}, {"ready": True}, {"ready": False}):
        response = functions.http(model, "POST", "/v2/repository/index", body, trigger=trigger)
        assert _answer(response) == expected, (body, response["body"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ready": "yes"}, "'ready' must be true or false: true lists only the models ready for inference"),
        ("[1]", "the body must be a JSON object, got an array"),
    ],
)
def test_a_repository_index_body_that_is_not_triton_s_is_400(body: Any, message: str, functions: Functions) -> None:
    response = functions.http("churn", "POST", "/v2/repository/index", body)
    assert _answer(response) == (400, {"error": message, "code": "bad_request"}), response["body"]


def test_triton_routes_answer_405_to_another_method(functions: Functions) -> None:
    for method, path, allow in (
        ("GET", "/v2/repository/index", "POST"),
        ("POST", "/v2/models/stats", "GET"),
        ("DELETE", "/v2/models/churn/stats", "GET"),
        ("PUT", "/v2/models/churn/versions/1/config", "GET"),
    ):
        response = functions.http("churn", method, path, {} if method != "GET" else None)
        assert error(response, 405, "method_not_allowed")["error"] == f"{method} is not allowed on {path}: use {allow}"
        assert response["headers"]["Allow"] == allow

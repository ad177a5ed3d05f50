"""Faults of ours (500), artifacts or a model that cannot serve (503), a model that answers NaN (422
non_finite_output, never an answer), unmapped error types; what the logs keep of a rejected request; and the
`Http5xx` metric by function and version that the canary's rollback alarms watch."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.bootstrap import Started, open_service
from handler.core.artifacts import Artifacts
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.errors import ArtifactError, ModelLoadError, SkewlessError
from handler.observability import metrics
from handler.settings import Settings
from handler.triggers import direct
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import ARTIFACTS, LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, infer_path, predict_path
from tests.support.golden_requests import v2_infer_body
from tests.support.http_events import HTTP_TRIGGERS, body_of, http_event
from tests.triggers.http.test_http_errors import error

PREDICT = predict_path("churn")


class _Broken(Exception):
    """Stands for a bug of ours deep in the model runtime."""


def _api_with_loader(model: str, loader: Callable[[Artifacts], Any], **settings: Any) -> HttpApi:
    s = Settings(model_dir=zoo.model_dir(model), **settings)
    artifacts = Artifacts.open(s.model_dir)
    return HttpApi(
        Started(Service(artifacts=artifacts, policy=s.coerce_policy(), model=LazyModel(artifacts, loader))), s
    )


def _broken_loader(artifacts: Artifacts) -> Any:
    def forward(inputs: Any) -> Any:
        raise _Broken("secret internals /opt/python/site-packages/foo.py line 42")

    return forward


@pytest.mark.parametrize("model", ["churn", "recommender"])
def test_our_own_fault_is_500_with_request_id_and_no_stack_trace(model: str, caplog: pytest.LogCaptureFixture) -> None:
    api = _api_with_loader(model, _broken_loader)
    for trigger in HTTP_TRIGGERS:
        context = LambdaContext()
        event = http_event(trigger, "POST", predict_path(model), zoo.cases(model)[0]["request"])
        response = api.handle(trigger, event, context)  # type: ignore[arg-type]
        body = error(response, 500, "internal_error")
        assert body == {"error": SkewlessError.public, "code": "internal_error", "request_id": context.aws_request_id}
    # ...the stack trace is in the log, for us.
    assert any(r.exc_info and r.exc_info[0] is _Broken for r in caplog.records)


def _copy(model: str, tmp_path: Path) -> Path:
    dst = tmp_path / model
    shutil.copytree(zoo.model_dir(model), dst)
    return dst


def _reason_logged(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    """The reason logged for the fault answered under `request_id`."""
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert reasons, f"nothing logged under request id {request_id}"
    return " ".join(reasons)


@pytest.mark.parametrize(("model", "changed"), [("churn", "preprocessing.json"), ("digits", "golden.json")])
def test_invalid_artifacts_answer_503_and_not_ready(
    model: str, changed: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy(model, tmp_path)
    (folder / changed).write_text((folder / changed).read_text() + " ")
    settings = Settings(model_dir=folder)
    with pytest.raises(ArtifactError) as caught:
        open_service(settings)
    api = HttpApi(Started(None, caught.value), settings)
    case = zoo.cases(model)[0]
    v2 = v2_infer_body(model, case)
    requests = ((predict_path(model), case["request"]), ("/predict", case["request"]), (infer_path(model), v2))
    for path, request in requests:
        context = LambdaContext()
        response = api.handle("http", http_event("http", "POST", path, request), context)
        body = error(response, 503, "artifacts_invalid")
        # What happened and what to do, not which file: the reason is the operator's, in the log by request id.
        assert body == {
            "error": ArtifactError.public,
            "code": "artifacts_invalid",
            "request_id": context.aws_request_id,
        }
        assert str(tmp_path) not in response["body"] and changed not in response["body"], response["body"]
        assert f"{changed} does not match manifest.json" in _reason_logged(caplog, context.aws_request_id)
    context = LambdaContext()
    ready = api.handle("http", http_event("http", "GET", "/v2/health/ready"), context)
    assert ready["statusCode"] == 503 and body_of(ready) == {
        "ready": False,
        "reason": ArtifactError.public,
        "request_id": context.aws_request_id,
    }, ready
    assert changed in _reason_logged(caplog, context.aws_request_id)
    live = api.handle("http", http_event("http", "GET", "/v2/health/live"), LambdaContext())
    assert live["statusCode"] == 200


def _cannot_load(artifacts: Artifacts) -> Any:
    raise ModelLoadError("the model uses custom object(s) skewless>Temperature that are not registered")


@pytest.mark.parametrize("model", ["churn", "reviews"])
def test_a_model_that_cannot_load_is_503_on_v1_and_v2_and_not_ready(
    model: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = _api_with_loader(model, _cannot_load)
    case = next(c for c in zoo.cases(model) if v2_infer_body(model, c) is not None)
    for path, request in ((predict_path(model), case["request"]), (infer_path(model), v2_infer_body(model, case))):
        context = LambdaContext()
        response = api.handle("http", http_event("http", "POST", path, request), context)
        body = error(response, 503, "model_unavailable")
        assert body["error"] == ModelLoadError.public and "skewless>Temperature" not in response["body"], body
        assert "skewless>Temperature" in _reason_logged(caplog, context.aws_request_id)
    for path in (f"/v2/models/{model}/ready", "/v2/health/ready"):
        context = LambdaContext()
        ready = api.handle("http", http_event("http", "GET", path), context)
        assert ready["statusCode"] == 503 and "skewless>Temperature" not in ready["body"], ready
        assert "skewless>Temperature" in _reason_logged(caplog, context.aws_request_id)
    answer = direct.handle_event(case["request"], LambdaContext(), api.started, "return")
    assert (answer["status"], answer["code"], answer["error"]) == (503, "model_unavailable", ModelLoadError.public)


def _nan_for_the_second_row(artifacts: Artifacts) -> Any:
    def forward(inputs: Any) -> Any:
        n = len(next(iter(inputs.values())))
        out = np.full((n, 1), 0.25, dtype=np.float32)
        if n > 1:
            out[1, 0] = np.nan
        return {"output_0": out}

    return forward


def test_a_model_that_answers_nan_is_422_non_finite_output_never_an_answer(capsys: pytest.CaptureFixture[str]) -> None:
    api = _api_with_loader("churn", _nan_for_the_second_row)
    case = next(c for c in zoo.cases("churn") if c["name"] == "batch_of_32_shuffled_keys")
    for path, request in ((PREDICT, case["request"]), (infer_path("churn"), v2_infer_body("churn", case))):
        response = api.handle("http", http_event("http", "POST", path, request), LambdaContext())
        body = error(response, 422, "non_finite_output")
        assert [(d["instance"], d["feature"]) for d in body["details"]] == [(1, "output_0")], body
        assert "NaN or infinite" in body["details"][0]["reason"], body
    answer = direct.handle_event(case["request"], LambdaContext(), api.started, "return")
    assert (answer["status"], answer["code"]) == (422, "non_finite_output"), answer
    # One request with one instance answered whole is still an answer.
    one = {"instances": case["request"]["instances"][:1]}
    response = api.handle("http", http_event("http", "POST", PREDICT, one), LambdaContext())
    assert response["statusCode"] == 200 and body_of(response) == {"predictions": [[0.25]]}, response


def test_errors_raised_by_our_error_types_keep_their_status() -> None:
    # A SkewlessError subclass nobody mapped still answers with its own status, in our shape.
    class Teapot(SkewlessError):
        status = 418
        code = "teapot"

    api = HttpApi(Started(None, Teapot("short and stout")), Settings(model_dir=ARTIFACTS))
    response = api.handle("alb", http_event("alb", "GET", "/v1/models/churn"), LambdaContext())
    assert error(response, 418, "teapot")["error"] == "short and stout"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


def test_error_messages_are_not_logged_with_request_values(
    functions: Functions, caplog: pytest.LogCaptureFixture
) -> None:
    row = dict(zoo.cases("churn")[0]["request"]["instances"][0])
    row["payment_method"] = 12345.678  # values we can look for in the logs
    row["monthly_charges"] = 98765.4321
    response = functions.http("churn", "POST", PREDICT, {"instances": [row]})
    assert response["statusCode"] == 422, response["body"]
    logged = _logged(caplog)
    assert "98765.4321" not in logged and "12345.678" not in logged, logged
    assert "invalid_input" in logged  # the rejection itself is logged


def test_request_values_are_logged_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    row = dict(zoo.cases("churn")[0]["request"]["instances"][0])
    row["monthly_charges"] = 98765.4321
    settings = Settings(model_dir=ARTIFACTS, log_request_values=True)
    api = HttpApi(Started(open_service(settings)), settings)
    api.handle("http", http_event("http", "POST", PREDICT, {"instances": [row]}), LambdaContext())
    assert "98765.4321" in _logged(caplog)


# --- Http5xx: one per 5xx answer, by function and version ------------------------------------------

# As Lambda sets them for a published version invoked through its alias (the canary's new version).
CANARY = {"AWS_LAMBDA_FUNCTION_NAME": "skewless-prod-InferenceFunction-7QX2", "AWS_LAMBDA_FUNCTION_VERSION": "12"}


def _http_5xx(out: str) -> list[dict[str, Any]]:
    """Every Http5xx EMF line printed on stdout: its value, dimension set and dimension values."""
    found = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == "Http5xx" for m in directive["Metrics"]):
                assert directive["Metrics"] == [{"Name": "Http5xx", "Unit": "Count"}], directive
                found.append(
                    {
                        "value": doc["Http5xx"],
                        "namespace": directive["Namespace"],
                        "dimensions": directive["Dimensions"],
                        "function": doc.get("function"),
                        "version": doc.get("version"),
                    }
                )
    return found


def _one_5xx(out: str, version: str = "12") -> None:
    [metric] = _http_5xx(out)
    assert metric == {
        "value": [1.0],
        "namespace": metrics.namespace,  # the function's own namespace (POWERTOOLS_METRICS_NAMESPACE)
        "dimensions": [["function", "version"]],
        "function": CANARY["AWS_LAMBDA_FUNCTION_NAME"],
        "version": version,
    }, metric


def test_every_5xx_answer_and_failed_direct_invoke_counts_one_http_5xx_of_its_function_and_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in CANARY.items():
        monkeypatch.setenv(name, value)
    broken = _api_with_loader("churn", _broken_loader)  # 500 on predictions
    unloadable = _api_with_loader("churn", _cannot_load)  # 503 on predictions and readiness
    not_started = HttpApi(Started(None, ArtifactError("x.json does not match")), Settings(model_dir=ARTIFACTS))
    request = zoo.cases("churn")[0]["request"]
    capsys.readouterr()
    for trigger in HTTP_TRIGGERS:
        for api, method, path, status in (
            (broken, "POST", PREDICT, 500),
            (unloadable, "POST", PREDICT, 503),
            (unloadable, "GET", "/v2/health/ready", 503),
            (not_started, "POST", infer_path("churn"), 503),
            (not_started, "GET", "/v2/health/ready", 503),
        ):
            body = request if method == "POST" and path == PREDICT else v2_infer_body("churn", zoo.cases("churn")[0])
            response = api.handle(trigger, http_event(trigger, method, path, body), LambdaContext())  # type: ignore[arg-type]
            assert response["statusCode"] == status, response["body"]
            _one_5xx(capsys.readouterr().out)
    for started in (broken.started, unloadable.started, not_started.started):
        answer = direct.handle_event(request, LambdaContext(), started, "return")
        assert answer["status"] >= 500, answer
        _one_5xx(capsys.readouterr().out)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "11")  # the version still serving most of the traffic
    failure = direct.handle_event(request, LambdaContext(), broken.started)
    assert isinstance(failure, direct.Failure) and isinstance(failure.error, direct.InternalError), failure
    _one_5xx(capsys.readouterr().out, version="11")


def test_answers_under_500_count_no_http_5xx(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in CANARY.items():
        monkeypatch.setenv(name, value)
    settings = Settings(model_dir=ARTIFACTS)
    api = HttpApi(Started(open_service(settings)), settings)
    good = zoo.cases("churn")[0]["request"]
    capsys.readouterr()
    for path, body, status in ((PREDICT, good, 200), (PREDICT, {"instances": []}, 422), ("/nowhere", None, 404)):
        response = api.handle("http", http_event("http", "POST", path, body), LambdaContext())
        assert response["statusCode"] == status, response["body"]
    assert direct.handle_event({"instances": []}, LambdaContext(), api.started, "return")["status"] == 422
    assert _http_5xx(capsys.readouterr().out) == []

"""Error answers and logs carry no stack trace, no file path and no request values; a fault of ours is a 500
(over HTTP) or a failed invocation raising InternalError (direct invoke) with the request id, its trace only in
the log."""

from __future__ import annotations

import io
import json
from types import ModuleType
from typing import Any

import pytest

from handler.bootstrap import Started, open_service
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import LambdaContext
from tests.hostile.bad_input import SECRET_NUMBER, SECRET_TEXT
from tests.hostile.catalogue import PREDICT, ROW
from tests.hostile.conftest import check_error, leaks, log_records
from tests.support import zoo
from tests.support.functions import FUNCTIONS
from tests.support.http_events import body_of, http_event

SECRET_PATH = "/opt/ml/private/churn-model/weights.h5"


def _broken_service(settings: Settings) -> Service:
    """The real service, except that loading the model fails with a path in the error."""
    real = open_service(settings)

    def loader(_: Any) -> Any:
        raise RuntimeError(f"cannot open {SECRET_PATH}: permission denied")

    return Service(artifacts=real.artifacts, policy=real.policy, model=LazyModel(real.artifacts, loader))


def _broken_api(settings: Settings) -> HttpApi:
    return HttpApi(Started(_broken_service(settings)), settings)


def _row_with_secrets() -> dict[str, Any]:
    return {**ROW, "age": SECRET_NUMBER, "internet_service": SECRET_TEXT}


def test_internal_error_is_500_with_request_id_and_no_path_or_trace(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
) -> None:
    monkeypatch.setattr(app.function, "http_api", _broken_api(app.function.settings))
    context = LambdaContext()
    response = app.lambda_handler(http_event("http", "POST", PREDICT, {"instances": [_row_with_secrets()]}), context)

    assert response["statusCode"] == 500, response["body"]
    body = body_of(response)
    assert body["code"] == "internal_error" and body["request_id"] == context.aws_request_id, body
    assert "fault of the service" in body["error"]
    for fragment in (SECRET_PATH, "permission denied", "RuntimeError", SECRET_TEXT, str(SECRET_NUMBER)):
        assert fragment not in response["body"], f"the 500 answer shows {fragment!r}: {response['body']}"
    assert not leaks(response["body"]), response["body"]

    # The operator finds the fault by the request id; the trace is in the log (and only there), the values are not.
    [failure] = [r for r in log_records(logs) if r.get("message") == "unexpected error while answering a request"]
    assert failure["function_request_id"] == context.aws_request_id, failure
    assert SECRET_PATH in failure.get("exception", ""), failure
    for value in (SECRET_TEXT, str(SECRET_NUMBER)):
        assert value not in logs.getvalue(), f"the log shows the request value {value!r}"


def test_request_values_are_logged_only_with_log_request_values(app: ModuleType, logs: io.StringIO) -> None:
    body = {"instances": [_row_with_secrets()]}

    quiet = HttpApi(Started(app.function.service), Settings())
    response = quiet.handle("http", http_event("http", "POST", PREDICT, body), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert SECRET_TEXT not in logs.getvalue() and str(SECRET_NUMBER) not in logs.getvalue(), logs.getvalue()

    verbose = HttpApi(Started(app.function.service), Settings(log_request_values=True))
    response = verbose.handle("http", http_event("http", "POST", PREDICT, body), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert SECRET_TEXT in logs.getvalue() and str(SECRET_NUMBER) in logs.getvalue(), "LOG_REQUEST_VALUES=true logs them"


def test_rejections_are_logged_with_status_and_code_only(app: ModuleType, logs: io.StringIO) -> None:
    bad = {"instances": [{**_row_with_secrets(), "contract_type": SECRET_TEXT}]}
    response = app.lambda_handler(http_event("http", "POST", PREDICT, json.dumps(bad)), LambdaContext())
    assert response["statusCode"] == 422, response["body"]
    [rejected] = [r for r in log_records(logs) if r.get("message") == "request rejected"]
    assert (rejected["status"], rejected["code"]) == (422, "invalid_input"), rejected
    assert SECRET_TEXT not in logs.getvalue() and SECRET_TEXT not in response["body"]


def test_an_internal_fault_on_direct_invoke_fails_with_internal_error_and_no_path_or_trace(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
) -> None:
    """Issue 15: a direct invoke that hit a fault of ours raised its message and trace to the caller."""
    monkeypatch.setattr(app.function, "service", _broken_service(app.function.settings))
    context = LambdaContext()
    with pytest.raises(Exception) as caught:
        app.lambda_handler({"instances": [_row_with_secrets()]}, context)
    assert type(caught.value).__name__ == "InternalError", caught.value
    message = str(caught.value)
    assert json.loads(message) == {
        "error": "internal error: this is a fault of the service, not of the request",
        "code": "internal_error",
        "status": 500,
        "request_id": context.aws_request_id,
    }
    # Raised `from None`, past our frames: no chained exception carries the cause to the runtime.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, caught.value
    assert not leaks(message) and SECRET_PATH not in message
    [failure] = [r for r in log_records(logs) if str(r.get("message")).startswith("unexpected error while answering")]
    assert SECRET_PATH in failure.get("exception", ""), failure
    for value in (SECRET_TEXT, str(SECRET_NUMBER)):
        assert value not in logs.getvalue(), f"the log shows the request value {value!r}"


@pytest.mark.parametrize("model", zoo.ZOO)
def test_a_zoo_model_s_422_and_its_log_quote_none_of_the_request_s_values(model: str, logs: io.StringIO) -> None:
    good = zoo.named_rows(next(c for c in zoo.cases(model) if zoo.named_rows(c)))[0]  # type: ignore[index]
    # Every input replaced by the planted text: wrong for every input of every zoo model.
    bad = dict.fromkeys(good, SECRET_TEXT + "-" + str(SECRET_NUMBER))
    response = FUNCTIONS.http(model, "POST", f"/v1/models/{model}:predict", {"instances": [good, bad]})
    body = check_error(response, 422, model, json.dumps({"instances": [good, bad]}), (SECRET_TEXT,))
    assert {(d["instance"], d["feature"]) for d in body["details"]} == {(1, f) for f in good}, body
    assert SECRET_TEXT not in logs.getvalue() and str(SECRET_NUMBER) not in logs.getvalue(), logs.getvalue()

"""Error answers and logs carry no stack trace, no file path and no request values; a fault of ours is a 500
(over HTTP) or a failed invocation raising InternalError (direct invoke) with the request id, its trace only in
the log."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from handler.app import Function
from handler.bootstrap import Started, open_service
from handler.core.model import LazyModel
from handler.core.service import Service
from handler.errors import ArtifactError, ModelLoadError, ModelSourceError, SkewlessError
from handler.settings import Settings
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import ARTIFACTS, ROOT, LambdaContext, load_event
from tests.hostile.bad_input import SECRET_NUMBER, SECRET_TEXT
from tests.hostile.catalogue import PREDICT, ROW
from tests.hostile.conftest import check_error, leaks, log_records
from tests.support import zoo
from tests.support.functions import FUNCTIONS
from tests.support.http_events import HTTP_TRIGGERS, body_of, http_event
from tests.support.moto_s3 import s3_put_event

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
        "error": SkewlessError.public,
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


# --- every fault of ours, and every client error, through every trigger -------------------------

SECRET_S3 = "s3://acme-private-models-prod/churn/v7/manifest.json"
SECRET_WINDOWS = "C:\\models\\churn\\v7\\model.keras"
SECRET_SETTING = ("SKEWLESS_TEST_SECRET", "hunter2-4417-db-password")
SECRET_TRACE = 'Traceback (most recent call last):\n  File "/var/task/handler/core/model.py", line 88, in load'
# What a fault of ours may be raised with: every kind of detail no answer may show.
DETAIL = (
    f"could not read {SECRET_S3} into {ARTIFACTS} ({SECRET_PATH}; {SECRET_WINDOWS}); "
    f"{SECRET_SETTING[0]}={SECRET_SETTING[1]}\n{SECRET_TRACE}"
)
# Raised at start (what bootstrap keeps as why the service did not start) or by the model's load; RuntimeError is a bug.
STARTUP_FAULTS: tuple[type[SkewlessError], ...] = (ArtifactError, ModelSourceError, ModelLoadError, SkewlessError)
LOAD_FAULTS: tuple[type[Exception], ...] = (*STARTUP_FAULTS, RuntimeError)
# A path of the server's filesystem: two or more segments after a slash or a backslash (a URL path has no place in
# a fault's answer either).
_PATH = re.compile(r"(?:/[\w.@+-]+){2,}|[A-Za-z]:\\|(?:\\[\w.@+-]+){2,}")


def _forbidden() -> list[str]:
    """The strings no answer may carry: the planted details, MODEL_DIR, and every longer value of the environment."""
    env = [v for v in os.environ.values() if len(v) >= 10]
    planted = [SECRET_S3, "s3://", SECRET_PATH, SECRET_WINDOWS, SECRET_SETTING[1], "Traceback", 'File "']
    return [*planted, str(ARTIFACTS), str(ROOT), *env]


def assert_safe(answer: str, what: str, fault: bool = True) -> None:
    """No planted detail, setting, file path or trace; a fault's answer has no path of any kind."""
    shown = [s for s in _forbidden() if s in answer] + leaks(answer) + (_PATH.findall(answer) if fault else [])
    assert not shown, f"{what}: the answer shows {shown!r:.300}: {answer[:600]}"


def _function(started: Started, **settings: Any) -> Callable[[Any, Any], Any]:
    """A Lambda handler (every trigger, Powertools around it) for a service that starts or fails as `started` says."""
    function = Function(Settings(model_dir=ARTIFACTS, drift_window=0, **settings))
    function.started = started
    function.http_api = HttpApi(started, function.settings)
    return function.handler()


def _started(fault: type[Exception], at_start: bool) -> Started:
    if at_start:
        assert issubclass(fault, SkewlessError)
        return Started(None, fault(DETAIL))
    real = open_service(Settings(model_dir=ARTIFACTS))

    def loader(_: Any) -> Any:
        raise fault(DETAIL)

    return Started(Service(artifacts=real.artifacts, policy=real.policy, model=LazyModel(real.artifacts, loader)))


def _sqs_event(body: str, message_id: str) -> dict[str, Any]:
    record = load_event("sqs.json")["Records"][0]
    return {"Records": [{**record, "messageId": message_id, "body": body}]}


def _logged_under(stream: io.StringIO, key: str, value: str) -> str:
    """Every log record whose `key` is (or lists) `value`, as text."""
    found = [r for r in log_records(stream) if value in (r.get(key), *(r.get(key) or [] if key.endswith("s") else []))]
    assert found, f"nothing logged under {key}={value}"
    return json.dumps(found)


def _faults() -> list[tuple[type[Exception], bool]]:
    return [(f, True) for f in STARTUP_FAULTS] + [(f, False) for f in LOAD_FAULTS]


@pytest.mark.parametrize(("fault", "at_start"), _faults(), ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_a_fault_of_ours_answers_without_its_detail_on_every_trigger_and_logs_it_under_the_request_id(
    fault: type[Exception],
    at_start: bool,
    logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(*SECRET_SETTING)
    handler = _function(_started(fault, at_start))
    body = {"instances": [ROW]}
    for trigger in HTTP_TRIGGERS:
        for method, path, request in (("POST", PREDICT, body), ("GET", "/v2/health/ready", None)):
            context = LambdaContext()
            response = handler(http_event(trigger, method, path, request), context)
            what = f"{fault.__name__} {'at start' if at_start else 'at load'}, {method} {path} via {trigger}"
            assert response["statusCode"] in (500, 503), f"{what}: {response}"
            assert_safe(response["body"], what)
            assert body_of(response)["request_id"] == context.aws_request_id, f"{what}: {response['body']}"
            if method == "POST" or at_start:
                assert SECRET_S3 in _logged_under(logs, "request_id", context.aws_request_id), what
    for trigger, event in (("direct", body), ("map batch", {"Items": [ROW]})):
        context = LambdaContext()
        with pytest.raises(Exception) as raised:
            handler(event, context)
        what = f"{fault.__name__} via {trigger}"
        assert type(raised.value).__name__ in ("ModelUnavailable", "InternalError"), f"{what}: {raised.value!r}"
        assert_safe(str(raised.value), what)
        assert json.loads(str(raised.value))["request_id"] == context.aws_request_id, what
        assert SECRET_S3 in _logged_under(logs, "request_id", context.aws_request_id), what
    # SQS: no answer leaves the function; the message goes back to SQS, its reason to the log under its id.
    answer = handler(_sqs_event(json.dumps(body), "m-fault"), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-fault"}]}, answer
    key = "message_ids" if at_start else "message_id"
    assert SECRET_S3 in _logged_under(logs, key, "m-fault"), f"{fault.__name__} via SQS"


def _nan_service() -> Service:
    """The real service, except that the model answers NaN: a 422 non_finite_output, never an answer."""
    real = open_service(Settings(model_dir=ARTIFACTS))

    def loader(_: Any) -> Any:
        return lambda inputs: {"output_0": np.full((len(next(iter(inputs.values()))), 1), np.nan, np.float32)}

    return Service(artifacts=real.artifacts, policy=real.policy, model=LazyModel(real.artifacts, loader))


# Each client error an HTTP trigger answers: (status, method, path, body, headers).
_HTTP_CLIENT_ERRORS: tuple[tuple[int, str, str, Any, dict[str, str]], ...] = (
    (400, "POST", PREDICT, "{not json", {}),
    (404, "POST", "/v1/models/fraud:predict", {"instances": [ROW]}, {}),
    (405, "GET", PREDICT, None, {}),
    (413, "POST", PREDICT, {"instances": [ROW] * 20}, {}),
    (415, "POST", PREDICT, {"instances": [ROW]}, {"Content-Encoding": "compress"}),
    (422, "POST", PREDICT, {"instances": [{**ROW, "age": "old"}]}, {}),
)


def test_a_client_error_names_the_client_s_fields_and_nothing_of_the_server_on_every_trigger(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(*SECRET_SETTING)
    handler = _function(Started(open_service(Settings(model_dir=ARTIFACTS))), max_body_bytes=4096, output_bucket=bucket)
    for trigger in HTTP_TRIGGERS:
        for status, method, path, body, headers in _HTTP_CLIENT_ERRORS:
            response = handler(http_event(trigger, method, path, body, headers=headers), LambdaContext())
            what = f"{status} {method} {path} via {trigger}"
            assert response["statusCode"] == status, f"{what}: {response['body'][:300]}"
            assert_safe(response["body"], what, fault=False)
    bad = {"instances": [{**ROW, "age": "old"}]}
    for event in (bad, ["not", "an", "object"], {"Items": [ROW] * 2000}):
        with pytest.raises(Exception) as raised:
            handler(event, LambdaContext())
        assert type(raised.value).__name__ == "InvalidInput", raised.value
        assert_safe(str(raised.value), f"direct invoke of {str(event)[:40]}", fault=False)
    answer = handler({"Items": [ROW, {**ROW, "age": "old"}]}, LambdaContext())
    assert [(e["item"], [r["input"] for r in e["reasons"]]) for e in answer["errors"]] == [(1, ["age"])], answer
    assert_safe(json.dumps(answer), "a Map batch with a bad item", fault=False)
    events = [
        ("m-json", "{not json"),
        ("m-field", json.dumps(bad)),
        ("m-id", json.dumps({**bad, "request_id": "../x"})),
    ]
    for message_id, body in events:
        assert handler(_sqs_event(body, message_id), LambdaContext()) == {"batchItemFailures": []}
        result = s3.get_object(Bucket=bucket, Key=f"sqs-results/{message_id}.json")["Body"].read().decode()
        assert json.loads(result)["code"] in ("bad_request", "invalid_input"), result
        assert_safe(result, f"the SQS error result of {message_id}", fault=False)


def test_a_model_that_answers_nan_is_refused_without_detail_on_every_trigger(s3: Any, bucket: str) -> None:
    handler = _function(Started(_nan_service()), output_bucket=bucket)
    for trigger in HTTP_TRIGGERS:
        response = handler(http_event(trigger, "POST", PREDICT, {"instances": [ROW]}), LambdaContext())
        assert (response["statusCode"], body_of(response)["code"]) == (422, "non_finite_output"), response["body"]
        assert_safe(response["body"], f"NaN via {trigger}", fault=False)
    with pytest.raises(Exception) as raised:
        handler({"instances": [ROW]}, LambdaContext())
    assert json.loads(str(raised.value))["code"] == "non_finite_output", raised.value
    assert_safe(str(raised.value), "NaN via direct invoke", fault=False)
    assert handler({"Items": [ROW]}, LambdaContext())["predictions"] == [None]
    assert handler(_sqs_event(json.dumps({"instances": [ROW]}), "m-nan"), LambdaContext()) == {"batchItemFailures": []}
    result = s3.get_object(Bucket=bucket, Key="sqs-results/m-nan.json")["Body"].read().decode()
    assert json.loads(result)["code"] == "non_finite_output", result
    assert_safe(result, "NaN via SQS", fault=False)


def test_the_s3_job_s_error_records_show_nothing_of_the_server(s3: Any, bucket: str) -> None:
    """A file that cannot be read, and rows that cannot be answered, are reported in objects the sender reads."""
    handler = _function(Started(open_service(Settings(model_dir=ARTIFACTS))), output_bucket=bucket)
    rows = [json.dumps(ROW), json.dumps({**ROW, "age": "old"}), "[" * 100_000 + "]" * 100_000, "{not json"]
    inputs = {"incoming/a.parquet": b"not a parquet file at all", "incoming/b.jsonl": "\n".join(rows).encode()}
    for key, data in inputs.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        handler(s3_put_event(bucket, key, size=len(data)), LambdaContext())
    written = s3.list_objects_v2(Bucket=bucket, Prefix="predictions/").get("Contents", [])
    records = [o["Key"] for o in written if o["Key"].endswith((".errors.jsonl", ".done.json"))]
    assert len(records) == 4, [o["Key"] for o in written]
    for key in records:
        assert_safe(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode(), key, fault=False)
    # The line nested 100,000 deep is one refused row, not a crash that S3 would retry for ever.
    marker = json.loads(s3.get_object(Bucket=bucket, Key="predictions/b.jsonl.done.json")["Body"].read())
    assert (marker["status"], marker["predicted"], marker["errors"]) == ("done", 1, 3), marker

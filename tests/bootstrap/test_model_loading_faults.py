"""Model loading faults, through the Lambda handler as a container would meet them.

Each broken deployment must say what is wrong at start (or at the first load, for what only loading can
find), answer 503 on prediction routes while /v2/health/ready says not ready and why, keep
/v2/health/live at 200, and never answer a prediction that is not the model's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.core.artifacts import Artifacts
from handler.core.model import load_tensorflow_forward
from handler.errors import ArtifactError, ModelLoadError, ModelSourceError
from handler.observability import logger
from handler.settings import Settings
from handler.triggers.direct import InternalError, ModelUnavailable
from tests.conftest import ARTIFACTS
from tests.support import zoo
from tests.support.artifacts import write_manifest
from tests.support.faults import rehash
from tests.support.http_events import body_of, http_event

PREDICT = "/v1/models/churn:predict"


def call(app: Any, ctx: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = app.lambda_handler(http_event("http", method, path, body), ctx)
    return response["statusCode"], body_of(response)


# What a caller is told for each code: what happened and what to do, never which file, bucket or setting.
PUBLIC = {
    "artifacts_invalid": ArtifactError.public,
    "model_source_unavailable": ModelSourceError.public,
    "model_unavailable": ModelLoadError.public,
}


@contextlib.contextmanager
def logged_reasons() -> Iterator[dict[str, list[str]]]:
    """The reasons logged while the block runs, by the request id they were logged under."""
    found: dict[str, list[str]] = {}

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, "reason") and hasattr(record, "request_id"):
                found.setdefault(str(record.request_id), []).append(str(record.reason))

    handler = Collect()
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    try:
        yield found
    finally:
        target.removeHandler(handler)


def assert_down(app: Any, ctx: Any, golden: dict[str, Any], reason: str, code: str) -> None:
    """503 on every prediction route with the safe text of its code, ready says not ready, live stays 200; the
    reason only in the log, under the request id of the answers."""
    case = golden["cases"][0]["request"]
    rows = golden["cases"][0]["request"]["instances"]
    with logged_reasons() as logged:
        for path, request in (
            (PREDICT, case),
            ("/predict", case),
            ("/v2/models/churn/infer", zoo.v2_body("churn", rows)),
        ):
            status, body = call(app, ctx, "POST", path, request)
            assert (status, body.get("code")) == (503, code), f"POST {path}: {status} {body}"
            assert body["error"] == PUBLIC[code] and body["request_id"] == ctx.aws_request_id, body
            assert "predictions" not in body and "outputs" not in body
        status, body = call(app, ctx, "GET", "/v2/health/ready")
        assert status == 503 and body["ready"] is False and body["reason"] == PUBLIC[code], body
        assert call(app, ctx, "GET", "/v2/health/live") == (200, {"live": True})
        with pytest.raises(ModelUnavailable) as raised:  # a direct invoke fails, so Step Functions can Retry it
            app.lambda_handler(case, ctx)
    direct = json.loads(str(raised.value))
    assert (direct["status"], direct["code"], direct["error"]) == (503, code, PUBLIC[code]), direct
    reasons = logged.get(ctx.aws_request_id, [])
    assert len(reasons) >= 5 and all(reason in r for r in reasons), f"logged under {ctx.aws_request_id}: {reasons}"


def assert_serves_golden(app: Any, ctx: Any, golden: dict[str, Any]) -> None:
    for case in golden["cases"]:
        status, body = call(app, ctx, "POST", PREDICT, case["request"])
        assert status == 200, body
        zoo.check_v1("churn", case, body, "HTTP API after the fault")


def local(model_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"MODEL_DIR": str(model_dir), **env})


# --- local artifacts -----------------------------------------------------------------------


def test_a_tampered_artifact_is_named_at_start_and_every_prediction_is_503(
    artifacts_copy: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    with (artifacts_copy / "model.keras").open("ab") as fh:
        fh.write(b"\0")
    app = start_app(local(artifacts_copy))
    assert app.startup_error is not None and "model.keras does not match manifest.json" in app.startup_error.message
    assert_down(app, lambda_context, golden, "model.keras does not match manifest.json", "artifacts_invalid")


def test_a_missing_artifact_is_named_at_start_and_every_prediction_is_503(
    artifacts_copy: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    (artifacts_copy / "preprocessing.json").unlink()
    app = start_app(local(artifacts_copy))
    assert_down(
        app, lambda_context, golden, "preprocessing.json listed in manifest.json is missing", "artifacts_invalid"
    )


@pytest.mark.parametrize("preload", ["true", "false"])
def test_a_custom_layer_not_registered_is_named_and_predictions_are_503(
    preload: str, monkeypatch: pytest.MonkeyPatch, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    import keras

    import handler.custom_objects  # noqa: F401  (registers the layer, which the test then takes away)

    monkeypatch.delitem(keras.saving.get_custom_objects(), "skewless>Temperature")
    app = start_app(local(ARTIFACTS, SERVING_RUNTIME="tensorflow", PRELOAD_MODEL=preload))
    reason = "custom object(s) skewless>Temperature that are not registered"
    if preload == "true":  # found during init
        assert app.startup_error is not None and reason in app.startup_error.message
        assert_down(app, lambda_context, golden, reason, "model_unavailable")
    else:  # found by the first load; from then on readiness says why
        assert call(app, lambda_context, "GET", "/v2/health/ready")[0] == 200
        status, body = call(app, lambda_context, "POST", PREDICT, golden["cases"][0]["request"])
        assert status == 503 and body["error"] == ModelLoadError.public, body
        assert_down(app, lambda_context, golden, reason, "model_unavailable")


def test_a_library_version_mismatch_warns_at_start_and_still_gives_the_golden_answers(
    artifacts_copy: Path,
    start_app: Any,
    golden: dict[str, Any],
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = json.loads((artifacts_copy / "manifest.json").read_text())
    manifest["versions"]["numpy"] = "1.26.0"
    write_manifest(artifacts_copy, manifest)
    with caplog.at_level(logging.WARNING, logger="skewless"):
        app = start_app(local(artifacts_copy, SERVING_RUNTIME="tensorflow"))
    assert any("numpy 2.4.6 installed, model exported with 1.26.0" in r.getMessage() for r in caplog.records)
    status, body = call(app, lambda_context, "GET", "/v2/health/ready")
    assert status == 200 and body["warnings"] == ["numpy 2.4.6 installed, model exported with 1.26.0"]
    assert_serves_golden(app, lambda_context, golden)


def test_a_version_mismatch_that_changes_the_answers_is_refused_not_served(
    artifacts_copy: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    """Stand-in for a library that computes differently: golden outputs that the model no longer gives."""
    shifted = json.loads((artifacts_copy / "golden.json").read_text())
    case = shifted["cases"][0]
    case["expected"]["output_0"] = [[min(1.0, v[0] + 0.3)] for v in case["expected"]["output_0"]]
    (artifacts_copy / "golden.json").write_text(json.dumps(shifted))
    rehash(artifacts_copy)
    manifest = json.loads((artifacts_copy / "manifest.json").read_text())
    manifest["versions"]["keras"] = "3.0.0"
    write_manifest(artifacts_copy, manifest)

    app = start_app(local(artifacts_copy, SERVING_RUNTIME="tensorflow"))
    assert app.startup_error is None  # the files are consistent: only running the model shows the difference
    with logged_reasons() as logged:
        status, body = call(app, lambda_context, "POST", PREDICT, golden["cases"][1]["request"])
    assert status == 503 and body["error"] == ModelLoadError.public, body
    [why] = logged[lambda_context.aws_request_id]
    assert "refusing to serve" in why and f"golden case '{case['name']}'" in why, why
    assert_down(app, lambda_context, golden, "keras 3.15.1 installed, model exported with 3.0.0", "model_unavailable")


# --- an interrupted load -------------------------------------------------------------------


def test_a_load_interrupted_by_a_timeout_leaves_the_next_request_able_to_load(
    start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    app = start_app(local(ARTIFACTS, SERVING_RUNTIME="tensorflow"))
    real = load_tensorflow_forward
    attempts: list[int] = []

    def interrupted_once(artifacts: Artifacts) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("read timed out while loading")
        return real(artifacts)

    app.service.model._loader = interrupted_once
    request = golden["cases"][0]["request"]
    with logged_reasons() as logged:
        status, body = call(app, lambda_context, "POST", PREDICT, request)
        assert (status, body["code"], body["error"]) == (503, "model_unavailable", ModelLoadError.public), body
        status, ready = call(app, lambda_context, "GET", "/v2/health/ready")
    assert status == 503 and ready["reason"] == ModelLoadError.public, ready
    why = logged[lambda_context.aws_request_id]
    assert "next request tries again" in why[0] and "TimeoutError" in why[-1], why
    assert call(app, lambda_context, "GET", "/v2/health/live")[0] == 200

    status, body = call(app, lambda_context, "POST", PREDICT, request)
    assert status == 200 and len(attempts) == 2, body
    assert_serves_golden(app, lambda_context, golden)
    status, ready = call(app, lambda_context, "GET", "/v2/health/ready")
    assert status == 200 and ready["model_loaded"] is True


# --- MODEL_S3_URI --------------------------------------------------------------------------


def upload_artifacts(s3: Any, bucket: str, prefix: str = "models/churn/v1/") -> str:
    for path in sorted(ARTIFACTS.iterdir()):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=prefix + path.name, Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}"


def from_s3(uri: str, cache: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "MODEL_S3_URI": uri,
            "MODEL_CACHE_DIR": str(cache),
            "MODEL_S3_TIMEOUT": "1",
            "MODEL_S3_MAX_ATTEMPTS": "2",
            **env,
        }
    )


def test_model_s3_uri_is_downloaded_verified_and_served(
    s3: Any, bucket: str, tmp_path: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    uri = upload_artifacts(s3, bucket)
    app = start_app(from_s3(uri, tmp_path))
    assert app.startup_error is None, app.startup_error
    [folder] = [p for p in tmp_path.iterdir() if p.name.startswith("skewless-model-")]
    assert app.service.artifacts.model_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in ARTIFACTS.iterdir() if p.is_file())
    assert_serves_golden(app, lambda_context, golden)


def test_an_artifact_missing_from_model_s3_uri_is_named_at_start(
    s3: Any, bucket: str, tmp_path: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    uri = upload_artifacts(s3, bucket)
    s3.delete_object(Bucket=bucket, Key="models/churn/v1/preprocessing.json")
    app = start_app(from_s3(uri, tmp_path))
    reason = f"artifact preprocessing.json listed in manifest.json is missing from {uri}"
    assert_down(app, lambda_context, golden, reason, "model_source_unavailable")
    assert not any(tmp_path.iterdir()), "a partial download was left behind"


def test_an_unreachable_model_s3_uri_fails_fast_with_the_reason(
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_app: Any,
    golden: dict[str, Any],
    lambda_context: Any,
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on: S3 is down
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    start = time.monotonic()
    app = start_app(from_s3("s3://models/churn/v1/", tmp_path))
    took = time.monotonic() - start
    assert took < 20, f"an unreachable MODEL_S3_URI took {took:.1f} s to fail"
    reason = "could not reach S3 to read s3://models/churn/v1/manifest.json"
    assert_down(app, lambda_context, golden, reason, "model_source_unavailable")


def test_a_model_that_cannot_load_never_answers_with_predictions_from_another(
    artifacts_copy: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    """A damaged model file after the check: a 503 on every request, never a fallback answer."""
    app = start_app(local(artifacts_copy, SERVING_RUNTIME="tensorflow"))
    (artifacts_copy / "model.keras").write_bytes(b"PK\x03\x04 not a keras archive")
    for _ in range(2):
        status, body = call(app, lambda_context, "POST", PREDICT, golden["cases"][0]["request"])
        assert status == 503 and "predictions" not in body, body
    with pytest.raises(ModelLoadError):
        app.service.model.load()


def test_an_internal_fault_in_a_direct_invoke_leaks_nothing_to_the_caller(
    start_app: Any, golden: dict[str, Any], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of ours (here: a bug raising with a secret in its message) fails the invocation as
    InternalError with a generic JSON body and the request id; its message and trace stay in the log."""
    app = start_app(local(ARTIFACTS))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail at /var/task/handler/core/secret.py")

    monkeypatch.setattr(app.service, "predict_v1", broken)
    with pytest.raises(InternalError) as raised:
        app.lambda_handler(golden["cases"][0]["request"], lambda_context)
    body = json.loads(str(raised.value))
    assert (body["status"], body["code"], body["request_id"]) == (500, "internal_error", lambda_context.aws_request_id)
    assert "secret" not in str(raised.value) and raised.value.__cause__ is None and raised.value.__context__ is None
    # Of our code, the runtime would see only the entry point's frame (the first frame is this test's call).
    frames = [entry.path for entry in raised.traceback][1:]
    assert [Path(p).name for p in frames] == ["app.py"], frames

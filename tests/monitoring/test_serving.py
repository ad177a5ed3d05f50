"""The drift watch through `lambda_handler`: every trigger counts, and each window is EMF on stdout.

Windows of 1,000 rows (DRIFT_WINDOW's default) of fresh or shifted data go through HTTP (v1),
direct invoke, SQS and S3 events; the EMF lines printed are read back and checked: one line per
feature with one `feature` dimension value, one per output, and the dimensionless maxima the
template's alarms watch.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handler.monitoring import metrics
from tests.conftest import LambdaContext, load_event
from tests.monitoring import data
from tests.monitoring.conftest import drift_scores, emf_lines, http_event, log_messages, make_function
from tests.support.artifacts import write_manifest

THRESHOLD = 0.1
NAMESPACE = "skewless-tests"  # tests/conftest.py sets POWERTOOLS_METRICS_NAMESPACE


def features(model: str) -> list[str]:
    return [f["name"] for f in data.signature(model)["features"]]


def one_window(out: str, model: str) -> tuple[dict[str, float], dict[str, float], list[dict[str, Any]]]:
    """The single window's FeatureDrift and PredictionDrift by name, and every EMF line printed."""
    lines = emf_lines(out)
    feature_windows = drift_scores(lines)
    output_windows = drift_scores(lines, "PredictionDrift", "output")
    assert len(feature_windows) == 1 and len(output_windows) == 1, f"expected one window: {feature_windows}"
    assert sorted(feature_windows[0]) == sorted(features(model))
    assert sorted(output_windows[0]) == [o["name"] for o in data.signature(model)["outputs"]]
    return feature_windows[0], output_windows[0], lines


def flagged(scores: dict[str, float]) -> list[str]:
    return sorted(n for n, s in scores.items() if s > THRESHOLD)


def post_in_batches(handler: Callable[[Any, Any], Any], model: str, rows: list[Any], size: int = 250) -> None:
    for start in range(0, len(rows), size):
        event = http_event(f"/v1/models/{model}:predict", {"instances": rows[start : start + size]})
        answer = handler(event, LambdaContext())
        assert answer["statusCode"] == 200, answer["body"][:300]


def test_http_requests_in_cents_flag_that_feature_and_the_prediction_in_emf(
    capture_stdout: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As Lambda sets them for version 3 behind an alias: each version's drift is a series of its own.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "skewless-InferenceFunction-X1")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "3")
    deployed = {"service": "skewless", "function": "skewless-InferenceFunction-X1", "version": "3"}
    handler = make_function("churn").handler()
    post_in_batches(handler, "churn", data.churn_rows(data.cents(data.churn(1000, 501))))
    scores, predictions, lines = one_window(capture_stdout(), "churn")
    assert flagged(scores) == ["monthly_charges"] and flagged(predictions) == ["output_0"]
    per_feature = [line for line in lines if "FeatureDrift" in line["metrics"]]
    assert all(line["dimensions"] == {"feature": line["dimensions"]["feature"], **deployed} for line in per_feature)
    assert all(line["namespace"] == NAMESPACE for line in lines)
    monthly = next(line for line in per_feature if line["dimensions"]["feature"] == "monthly_charges")
    assert monthly["metrics"]["OutOfRangeRate"] == [1.0]  # every value x100 lies past the training maximum
    (summary,) = [line for line in lines if "FeatureDriftMax" in line["metrics"]]
    assert summary["dimensions"] == deployed, "the alarmed series: no per-feature dimension, one per version"
    assert summary["metrics"]["FeatureDriftMax"] == [max(scores.values())]
    assert summary["metrics"]["PredictionDriftMax"] == [max(predictions.values())]
    assert summary["metrics"]["DriftedFeatures"] == [1.0]


def test_fresh_http_requests_flag_nothing(capture_stdout: Callable[[], str], logs: io.StringIO) -> None:
    handler = make_function("churn").handler()
    post_in_batches(handler, "churn", data.churn_rows(data.churn(1000, 502)))
    scores, predictions, lines = one_window(capture_stdout(), "churn")
    assert flagged(scores) == [] and flagged(predictions) == [], (scores, predictions)
    (summary,) = [line for line in lines if "DriftedFeatures" in line["metrics"]]
    assert summary["metrics"]["DriftedFeatures"] == [0.0]
    assert not [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]


def test_a_collapsed_category_is_logged_once_per_window_with_its_score(
    capture_stdout: Callable[[], str], logs: io.StringIO
) -> None:
    handler = make_function("churn").handler()
    post_in_batches(handler, "churn", data.churn_rows(data.collapse(data.churn(1000, 503))))
    scores, _, _ = one_window(capture_stdout(), "churn")
    assert flagged(scores) == ["contract_type"]
    (warning,) = [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]
    assert list(warning["drifted_features"]) == ["contract_type"] and warning["rows"] == 1000


def test_direct_invokes_of_darker_digits_flag_the_image(capture_stdout: Callable[[], str]) -> None:
    handler = make_function("digits").handler()
    images = data.digit_images(1000, 601, brightness=0.8)["image"]
    for start in range(0, 1000, 500):
        answer = handler({"instances": images[start : start + 500].tolist()}, LambdaContext())
        assert len(answer["predictions"]) == 500
    scores, _, _ = one_window(capture_stdout(), "digits")
    assert flagged(scores) == ["image"]


def test_reviews_with_fewer_positive_words_flag_the_words(capture_stdout: Callable[[], str]) -> None:
    handler = make_function("reviews").handler()
    post_in_batches(handler, "reviews", data.v1_rows(data.review_words(1000, 602, shifted=True)))
    scores, _, _ = one_window(capture_stdout(), "reviews")
    assert flagged(scores) == ["words"]


def test_sqs_messages_count_into_the_window(capture_stdout: Callable[[], str], bucket: str) -> None:
    handler = make_function("churn", output_bucket=bucket).handler()
    rows = data.churn_rows(data.cents(data.churn(1000, 504)))
    event = json.loads(json.dumps(load_event("sqs.json")))
    template = event["Records"][0]
    bodies = [json.dumps({"request_id": f"r{i}", "instances": rows[i * 250 : (i + 1) * 250]}) for i in range(4)]
    event["Records"] = [{**template, "messageId": f"m{i}", "body": body} for i, body in enumerate(bodies)]
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    scores, _, _ = one_window(capture_stdout(), "churn")
    assert flagged(scores) == ["monthly_charges"]


def test_an_s3_file_counts_into_the_window(capture_stdout: Callable[[], str], s3: Any, bucket: str) -> None:
    handler = make_function("churn", output_bucket=bucket).handler()
    cols = data.cents(data.churn(1000, 505))
    header = list(cols)
    text = ",".join(header) + "\n" + "".join(",".join(str(cols[h][i]) for h in header) + "\n" for i in range(1000))
    s3.put_object(Bucket=bucket, Key="incoming/cents.csv", Body=text.encode())
    event = json.loads(json.dumps(load_event("s3_put.json")))
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["object"].update(key="incoming/cents.csv", eTag="", size=len(text))
    (marker,) = handler(event, LambdaContext())["objects"]
    assert marker["predicted"] == 1000
    scores, _, _ = one_window(capture_stdout(), "churn")
    assert flagged(scores) == ["monthly_charges"]


def test_without_a_baseline_there_is_no_watch_and_one_log_line_says_why(
    tmp_path: Path, capture_stdout: Callable[[], str], logs: io.StringIO
) -> None:
    model_dir = tmp_path / "churn"
    shutil.copytree(data.ROOT / "model_artifacts" / "churn", model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    del manifest["files"]["baseline.json"]
    write_manifest(model_dir, manifest)
    (model_dir / "baseline.json").unlink()
    handler = make_function(model_dir).handler()
    post_in_batches(handler, "churn", data.churn_rows(data.cents(data.churn(1000, 506))))
    assert drift_scores(emf_lines(capture_stdout())) == []
    why = [m["message"] for m in log_messages(logs) if "drift watch" in m["message"]]
    assert why == [
        "drift watch off: the model's artifacts have no baseline.json (export_model(..., training_data=...) writes it)"
    ]


def test_drift_window_zero_turns_the_watch_off(capture_stdout: Callable[[], str]) -> None:
    function = make_function("churn", drift_window=0)
    # Only the inference metrics watch the batches (every function has them): no drift observer.
    assert function.drift is None and function.service is not None and function.service.observers == [metrics.record]
    post_in_batches(function.handler(), "churn", data.churn_rows(data.churn(1000, 507)))
    assert drift_scores(emf_lines(capture_stdout())) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRIFT_WINDOW": "50"}, "DRIFT_WINDOW=50: use at least 100 rows (or 0 to turn the watch off)"),
        ({"DRIFT_THRESHOLD": "high"}, "DRIFT_THRESHOLD='high' is not a number"),
        ({"CAPTURE_SAMPLE_RATE": "0.5"}, "CAPTURE_SAMPLE_RATE is set but CAPTURE_S3_URI is not"),
        ({"CAPTURE_S3_URI": "s3://b/x/", "CAPTURE_SAMPLE_RATE": "2"}, "CAPTURE_SAMPLE_RATE=2.0 must lie in [0.0, 1.0]"),
        ({"CAPTURE_S3_URI": "b/x/"}, "CAPTURE_S3_URI='b/x/' must look like s3://bucket/prefix/"),
        ({"CAPTURE_S3_URI": "s3://b/incoming/capture/"}, "overlaps INPUT_PREFIX='incoming/'"),
    ],
)
def test_bad_drift_and_capture_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    from handler.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert message in str(refused.value)


def test_the_statistics_code_loads_at_the_first_prediction_not_at_init() -> None:
    """A cold start that only answers health checks does not pay for the drift watch."""
    import os
    import subprocess
    import sys

    probe = """
import json, sys
from handler.monitoring import metrics
from handler.app import lambda_handler
from tests.monitoring.conftest import http_event
from handler.monitoring import metrics
from tests.conftest import LambdaContext, load_event
seen = {"init": "handler.monitoring.drift" in sys.modules}
event = http_event("/v2/health/ready", None)
event["requestContext"]["http"]["method"] = "GET"
lambda_handler(event, LambdaContext())
seen["health"] = "handler.monitoring.drift" in sys.modules
lambda_handler(http_event("/v1/models/churn:predict", load_event("direct.json")), LambdaContext())
seen["prediction"] = "handler.monitoring.drift" in sys.modules
print(json.dumps(seen))
"""
    env = {**os.environ, "MODEL_DIR": str(data.ROOT / "model_artifacts" / "churn"), "SERVING_RUNTIME": "litert"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=data.ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"init": False, "health": False, "prediction": True}


def test_a_baseline_this_server_cannot_read_turns_the_watch_off_with_a_warning(
    tmp_path: Path, logs: io.StringIO, capture_stdout: Callable[[], str]
) -> None:
    import hashlib

    model_dir = tmp_path / "churn"
    shutil.copytree(data.ROOT / "model_artifacts" / "churn", model_dir)
    (model_dir / "baseline.json").write_text(json.dumps({"format": 99}))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"]["baseline.json"] = hashlib.sha256((model_dir / "baseline.json").read_bytes()).hexdigest()
    write_manifest(model_dir, manifest)
    handler = make_function(model_dir).handler()
    post_in_batches(handler, "churn", data.churn_rows(data.churn(1000, 508)))
    assert drift_scores(emf_lines(capture_stdout())) == []
    (warning,) = [m["message"] for m in log_messages(logs) if m["message"].startswith("drift watch off")]
    assert "baseline.json cannot be read (baseline format 99, this version reads format 1)" in warning


@dataclass
class _ClientContext:
    custom: dict[str, str]


@dataclass
class _GateContext(LambdaContext):
    """A context as awslambdaric builds it for an invoke with a ClientContext."""

    client_context: _ClientContext | None = None


def test_requests_marked_as_the_deploy_gates_are_answered_but_not_watched() -> None:
    """The gate's golden rows are not users' traffic: answered the same, seen by no observer (drift, capture)."""
    function = make_function("churn", drift_window=100)
    assert function.service is not None
    seen: list[int] = []
    function.service.observers.append(lambda columns, prediction: seen.append(len(prediction.outputs["output_0"])))
    handler = function.handler()
    body = {"instances": data.churn_rows(data.churn(150, 503))}
    gate = _GateContext(client_context=_ClientContext({"skewless": "deploy-gate"}))
    other = _GateContext(client_context=_ClientContext({"skewless": "someone-else"}))
    answers = [handler(copy.deepcopy(body), context) for context in (gate, other, LambdaContext())]
    assert answers[0] == answers[1] == answers[2] and len(answers[0]["predictions"]) == 150
    assert seen == [150, 150], "only the two invocations that are not the gate's are observed"
    assert function.drift is not None and function.drift.reports == 2  # each batch of 150 closes a window of 100

"""The labels trigger, end to end against a local S3 server (moto over HTTP on 127.0.0.1): rows served over HTTP with
data capture on, a labels object put under LABELS_PREFIX, its S3 event through `lambda_handler`, and the EMF lines
out. The model is a scorer exported here with a quality baseline (its weights set by hand); the expected metrics
are worked out in the test from the HTTP answers."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest

from handler.app import Function
from handler.settings import Settings, SettingsError
from tests.conftest import LambdaContext, load_event
from tests.export.test_quality_baseline import N, _export, _p, _rows, _scorer
from tests.monitoring.conftest import emf_lines, http_event, log_messages, logs  # noqa: F401  (logs: a fixture)

SERVED = 600


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    held_out = _rows(2)
    labels = (np.random.default_rng(3).uniform(size=N) < _p(held_out)).astype(int)
    out = tmp_path_factory.mktemp("labels") / "scorer"
    _export(out, _scorer(), training_data=_rows(1, 2000), validation_data=(held_out, labels))
    return out


def function(model_dir: Path, bucket: str, **settings: Any) -> Function:
    base = Settings(model_dir=model_dir, serving_runtime="tensorflow", output_bucket=bucket)
    options = {"capture_s3_uri": f"s3://{bucket}/capture/", "labels_prefix": "labels/", **settings}
    return Function(replace(base, **options))


def serve(handler: Any, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """SERVED rows over HTTP, 100 a request named day-<seed>-<k>: their ids, the answers and true labels."""
    rows = _rows(seed, SERVED)
    truth = (np.random.default_rng(seed + 1).uniform(size=SERVED) < _p(rows)).astype(int)
    ids: list[str] = []
    scores: list[float] = []
    for start in range(0, SERVED, 100):
        body = {"instances": [{"a": float(rows["a"][i]), "b": float(rows["b"][i])} for i in range(start, start + 100)]}
        event = http_event("/v1/models/m:predict", body)
        event["headers"]["x-inference-id"] = f"day-{seed}-{start}"
        answer = handler(event, LambdaContext())
        assert answer["statusCode"] == 200, answer["body"]
        scores += [p[0] for p in json.loads(answer["body"])["predictions"]]
        ids += [f"day-{seed}-{start}/{i}" for i in range(100)]
    return ids, np.asarray(scores), truth


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event("s3_put.json"))
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["object"].update(key=quote_plus(key, safe="/"), eTag="", size=1)
    return event


def put_labels(s3: Any, bucket: str, key: str, ids: list[str], labels: np.ndarray) -> None:
    # SageMaker's ground-truth form for half, ours for the rest.
    lines = [
        json.dumps({"groundTruthData": {"data": str(v), "encoding": "CSV"}, "eventMetadata": {"eventId": i}})
        if k % 2
        else json.dumps({"inference_id": i, "label": int(v)})
        for k, (i, v) in enumerate(zip(ids, labels, strict=True))
    ]
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())


def quality_lines(out: str) -> tuple[dict[str, float], dict[str, Any]]:
    """{metric: value} of the ModelQuality lines, and the one summary line (metrics and dimensions)."""
    found = emf_lines(out)
    by_metric = {
        line["dimensions"]["metric"]: line["metrics"]["ModelQuality"][0]
        for line in found
        if "ModelQuality" in line["metrics"]
    }
    (summary,) = [line for line in found if "LabelledRows" in line["metrics"]]
    assert all(
        set(line["dimensions"]) == {"metric", "service", "function", "version"}
        for line in found
        if "ModelQuality" in line["metrics"]
    )
    return by_metric, summary


def test_a_labels_object_joins_the_captured_rows_and_the_quality_metrics_come_out_as_emf(
    s3: Any, bucket: str, scorer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hour = datetime.now(UTC)
    handler = function(scorer_dir, bucket).handler()
    ids, scores, truth = serve(handler, 50)
    labelled = 500  # the last 100 rows stay unlabelled; two labels name rows nobody served
    key = f"labels/{hour:%Y/%m/%d/%H}/batch 1.jsonl"
    put_labels(s3, bucket, key, [*ids[:labelled], "elsewhere/0", "elsewhere/1"], np.append(truth[:labelled], [0, 1]))
    capsys.readouterr()
    result = handler(s3_event(bucket, key), LambdaContext())
    (done,) = result["labels"]
    assert (done["status"], done["rows_joined"], done["unmatched_labels"], done["unlabelled_rows"]) == (
        "evaluated",
        labelled,
        2,
        SERVED - labelled,
    ), done
    by_metric, summary = quality_lines(capsys.readouterr().out)
    y, answered = truth[:labelled], scores[:labelled] >= 0.5
    tp, fp = np.sum(answered & (y == 1)), np.sum(answered & (y == 0))
    assert set(by_metric) == {"accuracy", "precision", "recall", "f1", "auc"}
    assert by_metric["accuracy"] == pytest.approx(np.mean(answered == (y == 1)))
    assert by_metric["precision"] == pytest.approx(tp / (tp + fp))
    assert summary["dimensions"] == {"service": "skewless", "function": "skewless", "version": "$LATEST"}
    assert summary["metrics"]["LabelledRows"] == [labelled] and summary["metrics"]["DegradedMetrics"] == [0]
    assert 0 < summary["metrics"]["ModelQualityDegradation"][0] < 1  # labels as the model was made: no alarm
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="predictions/").get("Contents"), "labels were predicted"


def test_labels_turned_over_raise_the_degradation_past_one_and_warn_with_the_worst_slices(
    s3: Any,
    bucket: str,
    scorer_dir: Path,
    capsys: pytest.CaptureFixture[str],
    logs: io.StringIO,  # noqa: F811
) -> None:
    handler = function(scorer_dir, bucket).handler()
    ids, _, truth = serve(handler, 60)
    key = "labels/undated.jsonl"  # no hour in the key: joined with the last day of capture
    put_labels(s3, bucket, key, ids, 1 - truth)
    capsys.readouterr()
    (done,) = handler(s3_event(bucket, key), LambdaContext())["labels"]
    assert done["rows_joined"] == SERVED and done["degraded"] == ["accuracy", "precision", "recall", "f1", "auc"]
    _, summary = quality_lines(capsys.readouterr().out)
    assert summary["metrics"]["ModelQualityDegradation"][0] > 1 and summary["metrics"]["DegradedMetrics"] == [5]
    (warning,) = [m for m in log_messages(logs) if m["message"] == "model quality fell below its baseline"]
    assert warning["key"] == key and warning["worst_slices"][0]["feature"] in {"a", "b"}


def test_without_data_capture_labels_are_logged_as_unjoinable_and_not_retried(
    s3: Any, bucket: str, scorer_dir: Path
) -> None:
    handler = function(scorer_dir, bucket, capture_s3_uri=None).handler()
    s3.put_object(Bucket=bucket, Key="labels/x.jsonl", Body=b'{"inference_id": "a/0", "label": 1}\n')
    assert handler(s3_event(bucket, "labels/x.jsonl"), LambdaContext())["labels"][0]["status"] == "no_capture"


def test_labels_must_not_overlap_the_input_or_the_output_prefix() -> None:
    for labels in ("incoming/labels/", "predictions/", "pred"):
        with pytest.raises(SettingsError, match="LABELS_PREFIX=.* overlap"):
            Settings.from_env({"LABELS_PREFIX": labels})
    with pytest.raises(SettingsError, match="LABELS_PREFIX=.*wildcards"):
        Settings.from_env({"LABELS_PREFIX": "lab*/"})
    assert Settings.from_env({"LABELS_PREFIX": "labels/"}).labels_prefix == "labels/"

"""Data capture against a local S3 server (moto over HTTP): what is written, when, and the report on it."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from handler.__main__ import main
from handler.monitoring import capture
from tests.conftest import ROOT, LambdaContext, load_event
from tests.monitoring import data
from tests.monitoring.conftest import http_event, log_messages, make_function


def captured(s3: Any, bucket: str, prefix: str = "capture/") -> list[list[dict[str, Any]]]:
    """Every capture object under the prefix (in key order), as its records."""
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
    out = []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        out.append([json.loads(line) for line in body.splitlines()])
    return out


def predict(handler: Any, model: str, rows: list[Any], context: LambdaContext | None = None) -> dict[str, Any]:
    answer = handler(http_event(f"/v1/models/{model}:predict", {"instances": rows}), context or LambdaContext())
    assert answer["statusCode"] == 200, answer["body"][:300]
    return dict(json.loads(answer["body"]))


def test_each_invocation_leaves_its_rows_and_answers_on_s3_before_it_returns(s3: Any, bucket: str) -> None:
    function = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/", capture_sample_rate=1.0)
    handler = function.handler()
    rows = data.churn_rows(data.churn(15, 901))
    for n in range(3):
        context = LambdaContext()
        answer = predict(handler, "churn", rows[n * 5 : (n + 1) * 5], context)
        # Written before the answer: a container frozen (and dropped) right now loses nothing acknowledged.
        objects = captured(s3, bucket)
        assert len(objects) == n + 1
        records = objects[-1]
        assert [r["instance"] for r in records] == rows[n * 5 : (n + 1) * 5]
        assert [r["outputs"]["output_0"] for r in records] == answer["predictions"]
        assert {(r["request_id"], r["trigger"], r["model"], r["version"]) for r in records} == {
            (context.aws_request_id, "http", "churn", "1")
        }


def test_nothing_is_captured_when_capture_is_unset(s3: Any, bucket: str) -> None:
    function = make_function("churn")
    assert function.capture is None
    predict(function.handler(), "churn", data.churn_rows(data.churn(5, 902)))
    assert captured(s3, bucket, "") == []


def test_the_sample_rate_keeps_about_that_share_of_rows(s3: Any, bucket: str) -> None:
    handler = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/", capture_sample_rate=0.5).handler()
    rows = data.churn_rows(data.churn(2000, 903))
    predict(handler, "churn", rows[:1000])
    predict(handler, "churn", rows[1000:])
    kept = sum(len(o) for o in captured(s3, bucket))
    # Binomial(2000, 0.5): mean 1000, standard deviation 22.4; five of them either side.
    assert 888 <= kept <= 1112, kept


def test_a_long_invocation_flushes_at_the_size_threshold_and_the_rest_at_its_end(s3: Any, bucket: str) -> None:
    function = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/", output_bucket=bucket, s3_chunk_rows=500)
    cols = data.churn(2500, 904)
    text = ",".join(cols) + "\n" + "".join(",".join(str(cols[h][i]) for h in cols) + "\n" for i in range(2500))
    s3.put_object(Bucket=bucket, Key="incoming/served.csv", Body=text.encode())
    event = json.loads(json.dumps(load_event("s3_put.json")))
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["object"].update(key="incoming/served.csv", eTag="", size=len(text))
    function.handler()(event, LambdaContext())
    objects = captured(s3, bucket)
    assert [len(o) for o in objects] == [capture.MAX_LINES, capture.MAX_LINES, 500]
    assert {r["trigger"] for o in objects for r in o} == {"s3"}


def test_an_old_buffer_is_flushed_at_the_age_threshold(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "MAX_AGE_SECONDS", 0.0)
    function = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/")
    assert function.capture is not None
    rows = data.churn_rows(data.churn(4, 905))
    function.capture.begin("by-hand", "direct")
    function.service.run(function.service.coercer.coerce({"instances": rows[:2]}).columns)  # type: ignore[union-attr]
    assert [len(o) for o in captured(s3, bucket)] == [2], "written at once, not at the end of the invocation"


def test_a_failed_write_never_fails_the_request_and_the_rows_go_out_with_the_next(
    s3: Any, bucket: str, logs: io.StringIO
) -> None:
    missing = bucket + "-later"
    handler = make_function("churn", capture_s3_uri=f"s3://{missing}/capture/").handler()
    rows = data.churn_rows(data.churn(6, 906))
    predict(handler, "churn", rows[:3])
    (warning,) = [m for m in log_messages(logs) if m["message"].startswith("data capture could not write")]
    assert warning["lines"] == 3 and warning["error_type"] == "NoSuchBucket"
    s3.create_bucket(Bucket=missing)
    predict(handler, "churn", rows[3:])
    (records,) = captured(s3, missing)
    assert [r["instance"] for r in records] == rows


def test_the_drift_report_reads_the_captured_objects_predictions_included(
    s3: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/").handler()
    rows = data.churn_rows(data.cents(data.churn(1000, 907)))
    for start in range(0, 1000, 250):
        predict(handler, "churn", rows[start : start + 250])
    capsys.readouterr()
    status = main(["drift", f"s3://{bucket}/capture/", "--model-dir", str(ROOT / "model_artifacts" / "churn")])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["files"] == 4 and report["rows"] == 1000
    assert report["drifted"] == ["monthly_charges"] and report["predictions_drifted"] == ["output_0"]

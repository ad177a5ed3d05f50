"""`python -m handler quality`: rows served with data capture on (a local S3 server), joined with labels in a file or
under an S3 prefix, in both label forms; what joins and what does not, the metrics, the exit status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from tests.conftest import LambdaContext
from tests.monitoring.conftest import ARTIFACTS, http_event, make_function
from training import churn_data

CHURN = str(ARTIFACTS / "churn")


def serve(bucket: str, n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n churn rows through HTTP with capture on, 50 a request, each request named by its X-Inference-Id: the rows'
    ids, the answers (from the HTTP answers) and the true labels."""
    handler = make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/").handler()
    columns, labels = churn_data.generate(n, seed)
    rows = [churn_data.row(columns, i) for i in range(n)]
    ids: list[str] = []
    scores: list[float] = []
    for start in range(0, n, 50):
        event = http_event("/v1/models/churn:predict", {"instances": rows[start : start + 50]})
        event["headers"]["x-inference-id"] = f"batch-{start}"
        answer = handler(event, LambdaContext())
        assert answer["statusCode"] == 200, answer["body"]
        scores += [p[0] for p in json.loads(answer["body"])["predictions"]]
        ids += [f"batch-{start}/{i}" for i in range(len(rows[start : start + 50]))]
    return ids, np.asarray(scores), labels.astype(np.float64)


def ours(inference_id: str, label: Any) -> str:
    return json.dumps({"inference_id": inference_id, "label": label})


def sagemaker(inference_id: str, label: Any) -> str:
    record = {"groundTruthData": {"data": str(label), "encoding": "CSV"}, "eventMetadata": {"eventId": inference_id}}
    return json.dumps({**record, "eventVersion": "0"})


def quality(capsys: pytest.CaptureFixture[str], *args: str, model: str = CHURN) -> tuple[int, dict[str, Any], str]:
    """The command's exit status, its JSON report and what it said on stderr."""
    capsys.readouterr()
    status = main(["quality", *args, "--model-dir", model])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip() else {}, err


def test_labels_in_both_forms_join_the_captured_rows_and_the_metrics_are_the_answers(
    s3: Any, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, scores, labels = serve(bucket, 300, 941)
    # 260 rows labelled (half in each form), 40 not; two labels for rows never served; one broken line
    pairs = enumerate(zip(ids[:260], labels[:260], strict=True))
    lines = [ours(i, int(y)) if k % 2 else sagemaker(i, int(y)) for k, (i, y) in pairs]
    lines[7:7] = ["{broken"]
    lines += [ours("batch-0/999", 1), sagemaker("nobody/0", 0)]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    status, report, _ = quality(capsys, f"s3://{bucket}/capture/", str(path))
    assert status == 0, report
    assert (report["rows_joined"], report["unmatched_labels"], report["unlabelled_rows"]) == (260, 2, 40)
    assert report["malformed_labels"] == {"count": 1, "examples": [f"{path} line 8: not JSON"]}
    assert report["problem"] == {"type": "binary", "output": "output_0", "from": "the quality baseline"}
    y, answered = labels[:260], scores[:260] >= 0.5
    tp, fp = int(np.sum(answered & (y == 1))), int(np.sum(answered & (y == 0)))
    fn, tn = int(np.sum(~answered & (y == 1))), int(np.sum(~answered & (y == 0)))
    assert report["metrics"]["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert report["metrics"]["accuracy"] == pytest.approx((tp + tn) / 260)
    assert report["metrics"]["precision"] == pytest.approx(tp / (tp + fp))
    assert report["baseline"]["accuracy"]["baseline"] is not None and report["degraded"] == []  # churn ships one
    by_contract = report["slices"]["by_feature"]["contract_type"]
    assert sum(s["rows"] for s in by_contract.values()) == 260


def test_labels_under_an_s3_prefix_and_a_degraded_metric_exit_1_naming_it(
    s3: Any, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids, scores, labels = serve(bucket, 200, 942)
    wrong = 1 - labels  # every label turned over: the model is now mostly wrong
    s3.put_object(Bucket=bucket, Key="labels/2026/12/06/a.jsonl", Body="\n".join(map(ours, ids[:100], wrong[:100])))
    s3.put_object(
        Bucket=bucket, Key="labels/2026/12/06/b.jsonl", Body="\n".join(map(sagemaker, ids[100:], wrong[100:]))
    )
    baseline = {
        "format": 1,
        "problem": "binary",
        "output": "output_0",
        "rows": 4000,
        "metrics": {"accuracy": {"value": 0.78, "interval": [0.765, 0.795]}, "auc": {"value": 0.85, "interval": None}},
    }
    path = tmp_path / "quality_baseline.json"
    path.write_text(json.dumps(baseline))
    status, report, _ = quality(capsys, f"s3://{bucket}/capture/", f"s3://{bucket}/labels/", "--baseline", str(path))
    assert status == 1 and report["rows_joined"] == 200 and report["degraded"] == ["accuracy"], report
    accuracy = report["baseline"]["accuracy"]
    assert accuracy["degraded"] and accuracy["worse_by"] == pytest.approx(
        0.78 - float(np.mean((scores >= 0.5) == wrong))
    )
    assert report["baseline"]["auc"]["threshold"] is None and not report["baseline"]["auc"]["degraded"]
    assert report["problem"]["from"] == "the quality baseline"


def test_what_cannot_be_read_exits_2_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(ours("a/0", 1) + "\n")
    status, _, err = quality(capsys, str(tmp_path / "missing.jsonl"), str(labels))
    assert status == 2 and "missing.jsonl: no such file" in err
    csv_file = tmp_path / "captured.csv"
    csv_file.write_text("a,b\n1,2\n")
    status, _, err = quality(capsys, str(csv_file), str(labels))
    assert status == 2 and "not JSON Lines" in err
    status, _, err = quality(capsys, str(labels), str(labels), model=str(ARTIFACTS / "recommender"))
    assert status == 2 and "name the one the labels judge (--output)" in err
    bad = tmp_path / "bad_baseline.json"
    bad.write_text('{"format": 9}')
    status, _, err = quality(capsys, str(labels), str(labels), "--baseline", str(bad))
    assert status == 2 and "cannot be read as a quality baseline" in err


def test_no_label_joining_is_a_report_that_says_so_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captured = tmp_path / "captured.jsonl"
    captured.write_text(json.dumps({"inference_id": "r/0", "instance": {}, "outputs": {"output_0": [0.3]}}) + "\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_text(ours("other/0", 1) + "\n")
    status, report, _ = quality(capsys, str(captured), str(labels), "--problem", "binary")
    assert status == 0 and (report["rows_joined"], report["unmatched_labels"], report["unlabelled_rows"]) == (0, 1, 1)
    assert report["metrics"]["accuracy"] is None and "no label joined" in report["warning"]

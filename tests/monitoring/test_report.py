"""`python -m handler drift`: CSV, JSON Lines and Parquet files, an S3 prefix, and files it must refuse."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.__main__ import main
from tests.conftest import ROOT, LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import http_event, make_function
from tests.support.artifacts import edit_manifest, write_manifest

CHURN = ROOT / "model_artifacts" / "churn"


def write_csv(path: Path, cols: data.Columns) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(cols))
        n = len(next(iter(cols.values())))
        writer.writerows([cols[name][i] for name in cols] for i in range(n))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, cols: data.Columns) -> Path:
    table = {name: (col.tolist() if col.ndim > 1 else col) for name, col in cols.items()}
    pq.write_table(pa.table(table), path)
    return path


def drift(capsys: pytest.CaptureFixture[str], *args: str, model: str = "churn") -> tuple[int, dict[str, Any], str]:
    """Run the command in this process: (exit status, the JSON printed, stderr)."""
    capsys.readouterr()
    status = main(["drift", *args, "--model-dir", str(ROOT / "model_artifacts" / model)])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else {}), err


def test_a_csv_in_cents_drifts_in_that_feature_only_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_csv(tmp_path / "served.csv", data.cents(data.churn(2000, 801)))
    status, report, _ = drift(capsys, str(path))
    assert status == 1 and report["drifted"] == ["monthly_charges"] and report["rows"] == 2000
    assert sorted(report["features"]) == sorted(f["name"] for f in data.signature("churn")["features"])
    monthly = report["features"]["monthly_charges"]
    assert monthly["drifted"] is True and monthly["score"] > 0.1 and monthly["out_of_range"] == 1.0
    assert monthly["mean"] == pytest.approx(100 * data.churn(2000, 801)["monthly_charges"].mean())
    assert all(not f["drifted"] for n, f in report["features"].items() if n != "monthly_charges")


def test_fresh_json_lines_drift_nowhere_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_jsonl(tmp_path / "served.jsonl", data.churn_rows(data.churn(2000, 802)))
    status, report, _ = drift(capsys, str(path))
    assert (status, report["drifted"], report["rows"], report["rejected_rows"]) == (0, [], 2000, 0)


def test_a_collapsed_category_in_parquet_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_parquet(tmp_path / "served.parquet", data.collapse(data.churn(2000, 803)))
    status, report, _ = drift(capsys, str(path))
    assert status == 1 and report["drifted"] == ["contract_type"]
    assert report["features"]["contract_type"]["out_of_vocabulary"] == 0.0


def test_darker_digits_in_json_lines_are_flagged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = data.digit_images(1000, 804, brightness=0.8)["image"]
    path = write_jsonl(
        tmp_path / "digits.jsonl", [{"instances": images[i : i + 100].tolist()} for i in range(0, 1000, 100)]
    )
    status, report, _ = drift(capsys, str(path), model="digits")
    assert status == 1 and report["drifted"] == ["image"] and report["rows"] == 1000


def test_a_word_shift_in_reviews_parquet_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_parquet(tmp_path / "reviews.parquet", data.review_words(1000, 805, shifted=True))
    status, report, _ = drift(capsys, str(path), model="reviews")
    assert status == 1 and report["drifted"] == ["words"]


def test_rows_that_do_not_fit_are_counted_with_their_reasons_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = data.churn_rows(data.churn(1200, 806))
    rows[3]["age"] = "old"
    rows[9]["contract_type"] = "lifetime"  # not a contract type the model knows
    path = write_jsonl(tmp_path / "served.jsonl", [*rows, "not a row"])
    path.write_text(path.read_text() + "{broken\n")
    status, report, _ = drift(capsys, str(path))
    assert (status, report["rows"], report["rejected_rows"]) == (0, 1198, 4)
    reasons = "\n".join(report["rejected_examples"])
    assert "age" in reasons and "contract_type" in reasons and "is not JSON" in reasons


def test_an_s3_prefix_is_read_object_by_object(s3: Any, bucket: str, capsys: pytest.CaptureFixture) -> None:
    cents = data.cents(data.churn(1500, 807))
    rows = data.churn_rows(cents)
    for part in range(3):
        body = "".join(json.dumps(r) + "\n" for r in rows[part * 500 : (part + 1) * 500])
        s3.put_object(Bucket=bucket, Key=f"served/2026/part-{part}.jsonl", Body=body.encode())
    s3.put_object(Bucket=bucket, Key="elsewhere/ignored.csv", Body=b"not,read\n")
    status, report, _ = drift(capsys, f"s3://{bucket}/served/")
    assert (status, report["files"], report["rows"], report["drifted"]) == (1, 3, 1500, ["monthly_charges"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("served.txt", b"a,b\n", "served.txt: unknown format: name files .csv, .jsonl, .ndjson or .parquet"),
        ("served.parquet", b"PAR1 but no", "served.parquet: not a Parquet file"),
        ("served.csv", b"age,tenure_months\n30,4\n", "served.csv (line 1): "),
        ("served.jsonl", b'"only"\n[1]\n', "served.jsonl: no row could be read (2 rejected; e.g. "),
        ("served.jsonl", b"\xff\xfe\x00garbage\n", "served.jsonl: not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_read_exits_2_naming_it_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    status, report, err = drift(capsys, str(path))
    assert status == 2 and report == {}
    assert err.startswith("error: ") and message in err, err


def test_a_missing_file_or_bucket_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, s3: Any) -> None:
    status, _, err = drift(capsys, str(tmp_path / "nowhere.csv"))
    assert status == 2 and "nowhere.csv: no such file" in err
    status, _, err = drift(capsys, "s3://skewless-no-such-bucket/served/")
    assert status == 2 and "s3://skewless-no-such-bucket/served/: cannot list the prefix (NoSuchBucket" in err


def test_a_model_without_a_baseline_exits_2_saying_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    model_dir = tmp_path / "churn"
    shutil.copytree(CHURN, model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    del manifest["files"]["baseline.json"]
    write_manifest(model_dir, manifest)
    (model_dir / "baseline.json").unlink()
    path = write_csv(tmp_path / "served.csv", data.churn(100, 808))
    capsys.readouterr()
    status = main(["drift", str(path), "--model-dir", str(model_dir)])
    err = capsys.readouterr().err
    assert status == 2 and "has no baseline.json: re-export the model with export_model(..., training_data=...)" in err


def test_a_small_file_is_judged_with_a_warning_about_noise(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_csv(tmp_path / "served.csv", data.churn(200, 809))
    _, report, _ = drift(capsys, str(path))
    assert report["warning"].startswith("only 200 rows: with 10 bins PSI is about 0.045 from sampling noise alone")


def test_the_command_line_itself_prints_the_report_and_writes_the_page(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "served.csv", data.cents(data.churn(1000, 810)))
    page = tmp_path / "report.html"
    env = {**os.environ, "MODEL_DIR": str(CHURN)}
    done = subprocess.run(
        [sys.executable, "-m", "handler", "drift", str(path), "--html", str(page)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads(done.stdout)["drifted"] == ["monthly_charges"]
    html = page.read_text()
    assert html.startswith("<!doctype html>") and html.count('class="plot feature-plot"') == 12
    # Self-contained: no script, and no address but the SVG namespace (which is a name, never fetched).
    assert "<script" not in html and _urls(html) == {"http://www.w3.org/2000/svg"}, _urls(html)


def _urls(html: str) -> set[str]:
    import re

    return set(re.findall(r"https?://[^\"' <>]+", html))


def test_the_command_does_not_import_tensorflow(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "served.csv", data.churn(100, 811))
    probe = (
        "import sys, runpy; sys.argv = ['handler', 'drift', sys.argv[1]];\n"
        "try:\n    runpy.run_module('handler', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "MODEL_DIR": str(CHURN)},
    )  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr[-2000:]
    assert np.isfinite(json.loads(done.stdout)["features"]["age"]["score"])


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_capture(path: Path, n: int, seed: int, classes: int = 10) -> tuple[Path, np.ndarray]:
    """Capture records of digits (only the first `classes` of them) with what the served model answered."""
    from training import digits

    images, labels = digits.generate(3 * n, seed)
    images = images[labels < classes][:n]
    handler = make_function("digits").handler()
    scores: list[list[float]] = []
    for start in range(0, n, 250):
        body = {"instances": images[start : start + 250].tolist()}
        answer = handler(http_event("/v1/models/digits:predict", body), LambdaContext())
        scores += json.loads(answer["body"])["predictions"]
    records = [{"instance": {"image": images[i].tolist()}, "outputs": {"output_0": scores[i]}} for i in range(n)]
    return write_jsonl(path, records), np.asarray(scores)


def named_digits(tmp_path: Path) -> Path:
    """The digits model with class names in its manifest, as export_model(..., class_names=...) records them."""
    folder = tmp_path / "digits"
    shutil.copytree(ROOT / "model_artifacts" / "digits", folder)
    edit_manifest(folder, lambda m: m.update(class_names=DIGIT_NAMES))
    return folder


def test_a_classifiers_outputs_are_told_by_class_named_from_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Only digits 0-4 served: the answers move (the image too, by its block means), and the classes say which.
    path, scores = digit_capture(tmp_path / "capture.jsonl", 1000, 812, classes=5)
    status, report, _ = drift(capsys, str(path), model=str(named_digits(tmp_path)))
    assert status == 1 and report["predictions_drifted"] == ["output_0"]
    output = report["outputs"]["output_0"]
    assert "mean" not in output, "a softmax's mean over every score is 1/10 whatever is served"
    classes = output["classes"]
    assert list(classes) == DIGIT_NAMES
    trained = json.loads((ROOT / "model_artifacts" / "digits" / "baseline.json").read_text())
    top = np.bincount(scores.argmax(axis=1), minlength=10)
    trained_means = trained["outputs"]["output_0"]["mean"]
    for i, name in enumerate(DIGIT_NAMES):
        assert classes[name]["mean_share"] == pytest.approx(scores[:, i].mean(), abs=1e-6), name
        assert classes[name]["training_mean_share"] == pytest.approx(trained_means[i], abs=1e-6), name
        assert (classes[name]["top_rows"], classes[name]["top_share"]) == (top[i], pytest.approx(top[i] / 1000)), name
    assert sum(classes[n]["top_rows"] for n in DIGIT_NAMES[5:]) < 50, "few rows of a digit never served are topped"


def test_without_class_names_a_softmax_is_told_by_class_index(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, scores = digit_capture(tmp_path / "capture.jsonl", 500, 813)
    _, report, _ = drift(capsys, str(path), model="digits")
    classes = report["outputs"]["output_0"]["classes"]
    assert list(classes) == [str(i) for i in range(10)]
    assert classes["3"]["mean_share"] == pytest.approx(scores[:, 3].mean(), abs=1e-6)


def test_scores_that_are_no_probabilities_are_not_told_by_class(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, scores = digit_capture(tmp_path / "capture.jsonl", 300, 814)
    logits = [json.loads(line) for line in path.read_text().splitlines()]
    for record in logits:
        record["outputs"]["output_0"] = [4.0 * s - 1.0 for s in record["outputs"]["output_0"]]  # not in [0, 1]
    _, report, _ = drift(capsys, str(write_jsonl(tmp_path / "logits.jsonl", logits)), model="digits")
    assert "classes" not in report["outputs"]["output_0"] and "mean" in report["outputs"]["output_0"]

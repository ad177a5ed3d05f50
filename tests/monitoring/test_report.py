"""`python -m handler drift`: CSV, JSON Lines and Parquet files, an S3 prefix, and files it must refuse."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.__main__ import main
from tests.conftest import ROOT
from tests.monitoring import data
from tests.support.artifacts import write_manifest

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

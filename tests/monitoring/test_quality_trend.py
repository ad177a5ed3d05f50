"""The quality page over time (`--html PAGE --history DIR`) in headless Chromium: each metric's earlier reports and
this one as points against the baseline band, the degraded ones red; and the folders it must refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handler.__main__ import main
from tests.conftest import ROOT
from tests.monitoring.quality_data import churn_window, flipped
from tests.monitoring.test_html import browser, open_page  # noqa: F401  (browser: the module's Chromium)
from tests.monitoring.test_quality_html import churn_baseline  # noqa: F401  (the module's quality baseline)

CHURN = str(ROOT / "model_artifacts" / "churn")
METRICS = ["accuracy", "precision", "recall", "f1", "auc"]
DAYS = ["2026-12-01", "2026-12-02", "2026-12-03"]


def write_window(folder: Path, seed: int, flip: bool) -> tuple[Path, Path]:
    window = churn_window(1000, seed)
    captured, labels = folder / f"captured-{seed}.jsonl", folder / f"labels-{seed}.jsonl"
    captured.write_text("\n".join(window.capture_lines(f"day-{seed}")) + "\n")
    labels.write_text("\n".join(window.label_lines(f"day-{seed}", flipped(window) if flip else None)) + "\n")
    return captured, labels


def quality(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["quality", *args, "--model-dir", CHURN])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def history(tmp_path: Path, capsys: pytest.CaptureFixture[str], churn_baseline: Path) -> Path:  # noqa: F811
    """Three days of labels as training made them, each day's JSON report saved as the user would."""
    folder = tmp_path / "history"
    folder.mkdir()
    for day, seed in zip(DAYS, (7101, 7102, 7103), strict=True):
        captured, labels = write_window(tmp_path, seed, flip=False)
        status, out, _ = quality(capsys, str(captured), str(labels), "--baseline", str(churn_baseline))
        assert status == 0 and json.loads(out)["degraded"] == [], "fresh labels degrade nothing"
        (folder / f"{day}.json").write_text(out)
    return folder


def points(driver: Any, metric: str) -> list[tuple[str, bool, float]]:
    """(label, degraded, height on the page: larger is lower) of each point of the metric's chart over time."""
    svg = driver.find_element("css selector", f"figure[data-name={metric}] svg.metric-trend")
    return [
        (c.get_attribute("data-label"), "degraded" in c.get_attribute("class"), float(c.get_attribute("cy")))
        for c in svg.find_elements("css selector", "circle.point")
    ]


def test_each_metric_is_drawn_over_the_reports_with_todays_drop_red_below_the_earlier_days(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    churn_baseline: Path,  # noqa: F811
    history: Path,
) -> None:
    captured, labels = write_window(tmp_path, 7104, flip=True)  # two-year contracts' labels turned over
    page = tmp_path / "quality.html"
    args = (str(captured), str(labels), "--baseline", str(churn_baseline), "--html", str(page))
    status, out, err = quality(capsys, *args, "--history", str(history))
    report = json.loads(out)
    assert status == 1 and "accuracy" in report["degraded"], err
    console = open_page(browser, page)
    assert console == [], f"the browser's console: {console}"
    assert len(browser.find_elements("css selector", "svg.metric-trend rect.band")) == len(METRICS)
    for metric in METRICS:
        shown = points(browser, metric)
        assert [label for label, _, _ in shown] == [*DAYS, "this report"], metric
        assert [bad for _, bad, _ in shown] == [False, False, False, metric in report["degraded"]], metric
    accuracy = points(browser, "accuracy")
    assert all(accuracy[-1][2] > earlier for _, _, earlier in accuracy[:-1]), "today's accuracy is drawn lowest"
    legend = browser.find_element("id", "trend-legend").text
    assert "over 4 reports" in legend and "2026-12-01 to this report" in legend
    browser.save_screenshot(str(ROOT / ".work" / "quality_report_trend.png"))


def test_without_history_the_page_has_no_chart_over_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captured, labels = write_window(tmp_path, 7105, flip=False)
    page = tmp_path / "quality.html"
    status, _, err = quality(capsys, str(captured), str(labels), "--problem", "binary", "--html", str(page))
    assert status == 0, err
    assert "metric-trend" not in page.read_text()


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({}, "no *.json report in it"),
        ({"a.json": "{not json"}, "a.json: not a JSON report"),
        ({"a.json": '{"model": "churn"}'}, 'a.json: no "metrics" object: not a report of python -m handler quality'),
        ({"a.json": '{"model": "digits", "metrics": {}}'}, "a.json: a report of model 'digits', not 'churn'"),
        (
            {"a.json": '{"model": "churn", "metrics": {"accuracy": "high"}}'},
            "metric 'accuracy' is 'high', not a number",
        ),
    ],
)
def test_a_history_folder_that_cannot_be_drawn_exits_2_naming_the_file_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], why: str
) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    captured, labels = tmp_path / "c.jsonl", tmp_path / "l.jsonl"
    captured.write_text("")
    labels.write_text("")
    status, out, err = quality(
        capsys, str(captured), str(labels), "--html", str(tmp_path / "p.html"), "--history", str(folder)
    )
    assert (status, out) == (2, "") and err.startswith(f"error: --history {folder}") and why in err, err


def test_history_without_a_page_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = quality(capsys, "c.jsonl", "l.jsonl", "--history", str(tmp_path))
    assert status == 2 and f"--history {tmp_path} draws the page's metrics over time: give --html PAGE too" in err

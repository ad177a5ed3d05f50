"""The quality page in a real headless Chromium (the drift page's browser fixture): each metric against its baseline
band, the degraded ones marked, the slices that fell most, nothing in the console."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from handler.__main__ import main
from handler.core.artifacts import QUALITY_FILE
from tests.conftest import ROOT
from tests.monitoring.quality_data import churn_window, flipped
from tests.monitoring.test_html import browser, open_page  # noqa: F401  (browser: the module's Chromium)
from tests.monitoring.test_quality_evidence import Judge
from tests.support.artifacts import edit_manifest

CHURN = str(ROOT / "model_artifacts" / "churn")


@pytest.fixture(scope="module")
def churn_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Churn's quality baseline, fitted on held-out rows as the export fits it."""
    path = tmp_path_factory.mktemp("quality") / "quality_baseline.json"
    judge = Judge("churn", churn_window)
    judge.baseline.save(path)
    return path


def write_inputs(tmp_path: Path, flip: bool) -> tuple[Path, Path]:
    window = churn_window(1000, 7001)
    captured, labels = tmp_path / "captured.jsonl", tmp_path / "labels.jsonl"
    captured.write_text("\n".join(window.capture_lines("day-1")) + "\n")
    labels.write_text("\n".join(window.label_lines("day-1", flipped(window) if flip else None)) + "\n")
    return captured, labels


def page_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str, model: str = CHURN
) -> tuple[Path, dict[str, Any]]:
    page = tmp_path / "quality.html"
    capsys.readouterr()
    status = main(["quality", *args, "--html", str(page), "--model-dir", model])
    report = json.loads(capsys.readouterr().out)
    assert status == (1 if report["degraded"] else 0) and page.is_file()
    return page, report


def figures(driver: Any) -> list[tuple[str, bool, float, str]]:
    """(metric, degraded, rendered width, the served dot's colour) of each metric's strip, in page order."""
    out = []
    for svg in driver.find_elements("css selector", "svg.metric-plot"):
        figure = svg.find_element("xpath", "..")
        dot = svg.find_element("css selector", "circle.served")
        out.append(
            (
                figure.get_attribute("data-name"),
                "degraded" in figure.get_attribute("class"),
                svg.size["width"],
                dot.get_attribute("fill"),
            )
        )
    return out


def test_labels_turned_over_for_one_category_show_degraded_metrics_and_that_slice_first(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    churn_baseline: Path,
) -> None:
    captured, labels = write_inputs(tmp_path, flip=True)
    page, report = page_for(tmp_path, capsys, str(captured), str(labels), "--baseline", str(churn_baseline))
    console = open_page(browser, page)
    assert console == [], f"the browser's console: {console}"
    assert browser.title == "Model quality: churn v1"
    shown = figures(browser)
    assert [name for name, _, _, _ in shown] == ["accuracy", "precision", "recall", "f1", "auc"]
    assert report["degraded"] and [name for name, bad, _, _ in shown if bad] == report["degraded"]
    assert all(width > 100 for _, _, width, _ in shown), "every strip is drawn"
    assert all(colour == ("#d93025" if bad else "#1a73e8") for _, bad, _, colour in shown)
    assert len(browser.find_elements("css selector", "svg.metric-plot rect.band")) == 5
    verdict = browser.find_element("id", "verdict").text
    assert verdict.startswith(f"{len(report['degraded'])} metric(s) degraded") and "accuracy" in verdict
    first = browser.find_element("css selector", "table.worst-slices tr.slice")
    assert (first.get_attribute("data-feature"), first.get_attribute("data-slice")) == ("contract_type", "two_year")
    assert first.find_elements("css selector", "td")[2].text == str(report["slices"]["worst"][0]["rows"])
    browser.save_screenshot(str(ROOT / ".work" / "quality_report_churn.png"))


def _unbaselined(tmp_path: Path) -> str:
    """Churn exported without validation rows: no quality_baseline.json (the shipped one taken out, as a re-export
    without validation_data would leave it)."""
    model = tmp_path / "churn"
    shutil.copytree(CHURN, model)
    (model / QUALITY_FILE).unlink()
    edit_manifest(model, lambda manifest: (manifest["files"].pop(QUALITY_FILE), manifest.pop("problem")))
    return str(model)


def test_a_page_without_a_baseline_shows_the_metrics_alone(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    captured, labels = write_inputs(tmp_path, flip=False)
    page, report = page_for(
        tmp_path, capsys, str(captured), str(labels), "--problem", "binary", model=_unbaselined(tmp_path)
    )
    assert open_page(browser, page) == [] and report["baseline"] is None
    assert browser.find_element("id", "verdict").text.startswith("No baseline to compare with")
    assert [(name, bad) for name, bad, _, _ in figures(browser)] == [
        (m, False) for m in ("accuracy", "precision", "recall", "f1", "auc")
    ]
    assert not browser.find_elements("css selector", "rect.band")

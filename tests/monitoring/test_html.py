"""The drift page in a real headless Chromium (Debian's, driven by selenium through Debian's chromedriver).

Installed with apt when missing, as the container tests install docker.io (`make clean-test-state`
removes them again). Flags as this closed network needs them: no background networking, no
component updates, a fresh profile.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.__main__ import main
from tests.conftest import ROOT, LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import http_event, make_function
from tests.monitoring.test_report import DIGIT_NAMES, digit_capture, named_digits, write_csv, write_parquet
from tests.support.docker_engine import apt_install, silent_step

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root, in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1600",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        apt_install(["chromium", "chromium-driver"], silent_step, "first run only, about 20 s")
    profile = tempfile.mkdtemp(prefix="skewless-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def page_for(tmp_path: Path, model: str | Path, source: Path | str) -> Path:
    page = tmp_path / f"{Path(model).name}.html"
    status = main(["drift", str(source), "--html", str(page), "--model-dir", str(ROOT / "model_artifacts" / model)])
    assert status in (0, 1) and page.is_file()
    return page


def open_page(browser: Any, page: Path) -> list[dict[str, Any]]:
    """Load the page; return what the browser logged (its console)."""
    browser.get_log("browser")  # what an earlier page left
    browser.get(page.as_uri())
    return list(browser.get_log("browser"))


def figures(browser: Any, css: str = "svg.feature-plot") -> list[tuple[str, bool, float]]:
    """(name, drifted, rendered width) of each plotted feature, in page order."""
    out = []
    for svg in browser.find_elements("css selector", css):
        figure = svg.find_element("xpath", "..")
        out.append((figure.get_attribute("data-name"), "drifted" in figure.get_attribute("class"), svg.size["width"]))
    return out


def test_the_churn_page_renders_one_plot_per_feature_drifted_first(browser: Any, tmp_path: Path) -> None:
    page = page_for(tmp_path, "churn", write_csv(tmp_path / "served.csv", data.cents(data.churn(2000, 951))))
    console = open_page(browser, page)
    assert console == [], f"the browser's console: {console}"
    assert browser.title == "Drift report: churn v1"
    shown = figures(browser)
    assert sorted(name for name, _, _ in shown) == sorted(f["name"] for f in data.signature("churn")["features"])
    assert shown[0][:2] == ("monthly_charges", True) and not any(drifted for _, drifted, _ in shown[1:])
    assert all(width > 100 for _, _, width in shown), "every plot is drawn"
    assert "monthly_charges" in browser.find_element("id", "verdict").text
    browser.save_screenshot(str(ROOT / ".work" / "drift_report_churn.png"))


def test_a_tensor_models_page_renders_its_features_and_predictions(
    browser: Any, tmp_path: Path, s3: Any, bucket: str
) -> None:
    handler = make_function("reviews", capture_s3_uri=f"s3://{bucket}/capture/").handler()
    rows = data.v1_rows(data.review_words(1000, 952, shifted=True))
    for start in range(0, 1000, 250):
        handler(http_event("/v1/models/reviews:predict", {"instances": rows[start : start + 250]}), LambdaContext())
    page = page_for(tmp_path, "reviews", f"s3://{bucket}/capture/")
    assert open_page(browser, page) == []
    assert [name for name, _, _ in figures(browser)] == ["words", "review_length"]
    assert [name for name, _, _ in figures(browser, "svg.output-plot")] == ["output_0"]


def test_a_page_with_nothing_drifted_says_so(browser: Any, tmp_path: Path) -> None:
    page = page_for(tmp_path, "sensor", write_parquet(tmp_path / "s.parquet", data.sensor_readings(1000, 953)))
    assert open_page(browser, page) == []
    verdict = browser.find_element("id", "verdict").text
    assert verdict == "Nothing drifted. No prediction was read (only data capture records carry them)."
    assert [(name, drifted) for name, drifted, _ in figures(browser)] == [("readings", False)]


def test_a_headline_counts_drifted_predictions_and_a_classifiers_table_names_its_classes(
    browser: Any, tmp_path: Path
) -> None:
    # Digits 0-4 only: the image holds, the answers drift (and the command exits 1, as the headline must say).
    source, _ = digit_capture(tmp_path / "capture.jsonl", 1000, 954, classes=5)
    page = page_for(tmp_path, named_digits(tmp_path), source)
    assert open_page(browser, page) == []
    assert browser.find_element("id", "verdict").text == "No feature drifted; 1 prediction drifted: output_0."
    assert [(name, drifted) for name, drifted, _ in figures(browser, "svg.output-plot")] == [("output_0", True)]
    rows = browser.find_elements("css selector", "figure[data-name=output_0] table.classes tr[data-class]")
    assert [r.get_attribute("data-class") for r in rows] == DIGIT_NAMES
    cells = {r.get_attribute("data-class"): [td.text for td in r.find_elements("css selector", "td")] for r in rows}
    assert cells["nine"][0] == "nine" and all(c.endswith("%") for c in cells["nine"][1:3])
    caption = browser.find_element("css selector", "figure[data-name=output_0] .kind").text
    assert caption.startswith("(tensor, class ") and caption[len("(tensor, class ") : -1] in DIGIT_NAMES
    browser.save_screenshot(str(ROOT / ".work" / "drift_report_digits_classes.png"))

"""The drift page in a real headless Chromium (Debian's, driven by selenium through Debian's chromedriver).

Installed with apt when missing, as the container tests install docker.io (`make clean-test-state`
removes them again). Flags as this closed network needs them: no background networking, no
component updates, a fresh profile.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from tests.conftest import ROOT, LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import http_event, make_function
from tests.monitoring.test_report import DIGIT_NAMES, digit_capture, named_digits, write_csv, write_parquet
from tests.support.docker_engine import apt_install, silent_step
from training import sensor

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
    # Digits 0-4 only: the answers drift, and so does the image where its strokes sit (the block means' map sees
    # half the digits' shapes gone); the headline counts both, as the exit status does.
    source, _ = digit_capture(tmp_path / "capture.jsonl", 1000, 954, classes=5)
    page = page_for(tmp_path, named_digits(tmp_path), source)
    assert open_page(browser, page) == []
    assert browser.find_element("id", "verdict").text == "1 feature drifted: image. 1 prediction drifted: output_0."
    assert [(name, drifted) for name, drifted, _ in figures(browser, "svg.output-plot")] == [("output_0", True)]
    rows = browser.find_elements("css selector", "figure[data-name=output_0] table.classes tr[data-class]")
    assert [r.get_attribute("data-class") for r in rows] == DIGIT_NAMES
    cells = {r.get_attribute("data-class"): [td.text for td in r.find_elements("css selector", "td")] for r in rows}
    assert cells["nine"][0] == "nine" and all(c.endswith("%") for c in cells["nine"][1:3])
    caption = browser.find_element("css selector", "figure[data-name=output_0] .kind").text
    assert caption.startswith("(tensor, class ") and caption[len("(tensor, class ") : -1] in DIGIT_NAMES
    browser.save_screenshot(str(ROOT / ".work" / "drift_report_digits_classes.png"))


def caption_numbers(text: str) -> dict[str, float]:
    """'dispersion 8.930 (concentration): training 0.005, served 0.0991' -> {"dispersion": ..., "training": ...}."""
    words = text.replace(":", "").replace(",", "").replace("(", "").replace(")", "").split()
    return {w: float(words[i + 1]) for i, w in enumerate(words[:-1]) if w in ("dispersion", "training", "served")}


def test_ten_item_ids_show_their_concentration_and_a_readable_top_of_the_ids(browser: Any, tmp_path: Path) -> None:
    cols = data.ten_item_ids(data.recommender_pairs(1000, 955), 955)
    page = page_for(tmp_path, "recommender", write_parquet(tmp_path / "ten.parquet", cols))
    assert open_page(browser, page) == []
    figure = browser.find_element("css selector", "figure[data-name=item_id]")
    assert "drifted" in figure.get_attribute("class")
    # Flagged by the concentration alone: the badge says so beside a small PSI.
    assert figure.find_element("css selector", ".badge").text == "drifted: concentration"
    psi = float(figure.find_element("css selector", ".score").text.removeprefix("PSI "))
    assert psi < 0.1, psi
    # The id's own threshold from baseline.json: calibrated on 1,000-row windows, so at 1,000 rows it applies as is.
    calibrated = json.loads((ROOT / "model_artifacts/recommender/baseline.json").read_text())["features"]["item_id"]
    assert figure.find_element("css selector", ".threshold").text == f"(threshold {calibrated['threshold']:.3g})"
    line = figure.find_element("css selector", ".dispersion")
    assert line.get_attribute("data-of") == "concentration"
    shown = caption_numbers(line.text)
    # By numpy on the raw ids: the chance that two of the served ids (drawn without replacement) are equal, and the
    # same of training's counts, which baseline.json records as fractions of its count.
    ids = np.bincount(cols["item_id"].astype(np.int64), minlength=200).astype(np.float64)
    served = float(ids @ (ids - 1) / (1000 * 999))
    trained = json.loads((ROOT / "model_artifacts/recommender/baseline.json").read_text())["features"]["item_id"]
    counts = np.rint(np.asarray(trained["bins"][0]["fractions"]) * trained["count"])
    training = float(counts @ (counts - 1) / (counts.sum() * (counts.sum() - 1)))
    r = served / training
    assert shown["served"] == pytest.approx(served, rel=1e-3) and shown["training"] == pytest.approx(training, rel=1e-3)
    assert shown["dispersion"] == pytest.approx((r + 1 / r) / 2 - 1, abs=1e-3), (shown, r)
    # The others summed, 12 ids, the rest: 14 bars a side, not 201; each of the ten served ids among them.
    bars = figure.find_elements("css selector", "svg rect")
    assert len(bars) == 2 * 14, len(bars)
    tips = [b.find_element("css selector", "title").get_attribute("textContent") for b in bars[1::2]]
    assert {t.split(":")[0] for t in tips} >= {str(i) for i in data.TEN_IDS}, tips
    assert tips[0].startswith("188 others: ") and tips[0].endswith("served 0.0%"), tips
    labels = [t.text for t in figure.find_elements("css selector", "svg text")]
    assert (labels[0], labels[-1]) == ("188 others", "(rest)"), labels
    browser.save_screenshot(str(ROOT / ".work" / "drift_report_ten_ids.png"))


def test_doubled_sensor_noise_shows_the_steps_std_that_flagged_it(browser: Any, tmp_path: Path) -> None:
    readings = data.sensor_readings(1000, 956, noise=2 * sensor.NOISE)
    page = page_for(tmp_path, "sensor", write_parquet(tmp_path / "noisy.parquet", readings))
    assert open_page(browser, page) == []
    figure = browser.find_element("css selector", "figure[data-name=readings]")
    assert figure.find_element("css selector", ".badge").text == "drifted: std of the steps"
    line = figure.find_element("css selector", ".dispersion")
    assert line.get_attribute("data-of") == "step_std" and "channel 2" in line.text, line.text
    shown = caption_numbers(line.text)
    # By numpy on the raw rows (as float32, as served): the std of channel 2's steps; training's from baseline.json.
    steps = np.diff(readings["readings"].astype(np.float32).astype(np.float64), axis=1)[:, :, 2]
    trained = json.loads((ROOT / "model_artifacts/sensor/baseline.json").read_text())["features"]["readings"]
    assert shown["served"] == pytest.approx(steps.std(), rel=1e-3)
    assert shown["training"] == pytest.approx(trained["step_std"][2], rel=1e-3)
    r = (steps.std() / trained["step_std"][2]) ** 2
    assert shown["dispersion"] == pytest.approx((r + 1 / r) / 2 - 1, abs=1e-3)


def test_an_offset_on_every_channel_lists_them_all(browser: Any, tmp_path: Path) -> None:
    readings = data.sensor_readings(1000, 957)["readings"] + np.float32(0.3)
    page = page_for(tmp_path, "sensor", write_parquet(tmp_path / "offset.parquet", {"readings": readings}))
    assert open_page(browser, page) == []
    figure = browser.find_element("css selector", "figure[data-name=readings]")
    line = figure.find_element("css selector", ".channels")
    # Each channel moved by twice the noise's std: test_channels.py works the scores out by numpy (each about 0.3).
    assert line.get_attribute("data-channels") == "0 1 2", line.text
    assert line.text.startswith("drifted channels: 0 (") and ", 1 (" in line.text and ", 2 (" in line.text
    kind = figure.find_element("css selector", ".kind").text
    assert kind in {f"(tensor, channel {c})" for c in range(3)}, kind  # the worst channel still named, as before


def test_a_headline_with_only_predictions_drifted_says_no_feature_did() -> None:
    from types import SimpleNamespace

    from handler.monitoring.drift import Drift, DriftReport
    from handler.monitoring.report.html import verdict

    def drift(name: str, score: float) -> Drift:
        return Drift(name, "numeric", score, score > 0.1, 100, None, ())

    report = DriftReport(100, 0.1, {"image": drift("image", 0.02)}, {"output_0": drift("output_0", 0.5)})
    said = verdict(SimpleNamespace(report=report))  # type: ignore[arg-type]
    assert said == "No feature drifted; <strong>1 prediction drifted:</strong> output_0."

"""Per-feature drift thresholds calibrated from bootstrap windows: the false-alarm rate they promise, on data whose
distribution is known here (normal and categorical draws), at the calibration's window and at others."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from handler.core.signature import TensorSpec
from handler.monitoring.baseline import Baseline
from handler.monitoring.calibration import Calibration, calibrate
from handler.monitoring.drift import DEFAULT_THRESHOLD

SPECS = [TensorSpec("x", "float32"), TensorSpec("colour", "string")]
OUTPUTS = [TensorSpec("p", "float32", (1,))]
COLOURS = np.array(["red", "green", "blue", "grey"], dtype=object)
TRAINING_ROWS = 5000


def draw(rows: int, seed: int, shift: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rows of the one true distribution (x ~ N(shift, 1), colour with shares 0.4/0.3/0.2/0.1) and a 'model' of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows).astype(np.float32)
    colour = COLOURS[rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])]
    p = (1 / (1 + np.exp(-x))).reshape(-1, 1).astype(np.float32)
    return {"x": x, "colour": colour}, {"p": p}


@pytest.fixture(scope="module")
def calibrated() -> Baseline:
    columns, predictions = draw(TRAINING_ROWS, seed=1)
    held_out, answers = draw(TRAINING_ROWS, seed=2)
    baseline = Baseline.fit(SPECS, OUTPUTS, columns, predictions)
    return calibrate(baseline, held_out, answers, window=1000, false_alarm_rate=0.1, held_out=True)


def alarm_rate(baseline: Baseline, rows: int, windows: int, seed: int, shift: float = 0.0) -> float:
    alarms = 0
    for w in range(windows):
        columns, predictions = draw(rows, seed + w, shift)
        report = baseline.compare(baseline.tally(columns, predictions), rows)
        alarms += bool(report.drifted_names())
    return alarms / windows


@pytest.mark.parametrize("rows", [250, 1000, 4000])
def test_fresh_windows_raise_false_alarms_near_the_rate_asked_for(calibrated: Baseline, rows: int) -> None:
    """Asked for 10% (the features together), fresh windows of the true distribution alarm in about that share: at
    most 15% (the chi-square tail errs high) and at least 2% (the thresholds are not simply huge). At 250 and 4,000
    rows too: the threshold follows the window's rows."""
    rate = alarm_rate(calibrated, rows, windows=300, seed=10_000)
    assert 0.02 <= rate <= 0.15, f"{rate:.1%} of fresh {rows}-row windows alarmed, asked for 10%"


def test_each_feature_gets_its_own_threshold_and_the_baseline_keeps_them(calibrated: Baseline, tmp_path: Path) -> None:
    thresholds = {n: r.threshold for n, r in {**calibrated.features, **calibrated.outputs}.items()}
    assert all(t is not None and 0 < t < DEFAULT_THRESHOLD for t in thresholds.values()), thresholds
    # Ten quantile bins against four categories: x's chance scores are the larger (about 9/rows against 3/rows).
    assert thresholds["x"] > thresholds["colour"]  # type: ignore[operator]
    calibrated.save(tmp_path / "baseline.json")
    again = Baseline.load(tmp_path / "baseline.json")
    assert {n: r.threshold for n, r in {**again.features, **again.outputs}.items()} == thresholds
    assert again.calibration == calibrated.calibration
    assert json.loads((tmp_path / "baseline.json").read_text())["calibration"] == {
        "window": 1000,
        "false_alarm_rate": 0.1,
        "draws": 200,
        "training_rows": TRAINING_ROWS,
        "source": "held_out",
        "source_rows": TRAINING_ROWS,
    }


def test_a_shift_under_the_old_fixed_threshold_is_flagged_by_the_calibrated_one(calibrated: Baseline) -> None:
    """x's mean moved by 0.25 std: PSI about 0.06 (0.25**2, two normals' Jeffreys divergence), under the fixed 0.1,
    far over x's chance scores at 1,000 rows."""
    fixed = calibrated_rate = 0
    for w in range(50):
        columns, predictions = draw(1000, 20_000 + w, shift=0.25)
        tallies = calibrated.tally(columns, predictions)
        fixed += "x" in calibrated.compare(tallies, 1000, DEFAULT_THRESHOLD).drifted_names()
        calibrated_rate += "x" in calibrated.compare(tallies, 1000).drifted_names()
    assert calibrated_rate == 50 and fixed < 25, (calibrated_rate, fixed)


def test_a_large_file_is_judged_closer_than_a_window() -> None:
    calibration = Calibration(1000, 0.01, 200, 5000, "held_out", 5000)
    assert calibration.scaled(0.03, 1000) == pytest.approx(0.03)
    # (1/20000 + 1/5000) / (1/1000 + 1/5000): a fifth of the window's threshold, by hand.
    assert calibration.scaled(0.03, 20_000) == pytest.approx(0.03 * 0.00025 / 0.0012)
    assert calibration.scaled(0.03, 100) == pytest.approx(0.03 * 0.0102 / 0.0012)
    # Windows of the training rows saw their own sampling only (1/1000): scaled by 1000 * (1/rows + 1/N).
    training = Calibration(1000, 0.01, 200, 5000, "training", 5000)
    assert training.scaled(0.03, 1000) == pytest.approx(0.03 * 1.2)
    assert math.isinf(calibration.scaled(0.03, 0))


def test_a_baseline_without_calibration_keeps_the_fixed_threshold() -> None:
    columns, predictions = draw(2000, seed=3)
    baseline = Baseline.fit(SPECS, OUTPUTS, columns, predictions)
    report = baseline.compare(baseline.tally(*draw(1000, seed=4)), 1000)
    assert report.threshold == DEFAULT_THRESHOLD
    assert {d.threshold for d in report.features.values()} == {DEFAULT_THRESHOLD}


def test_a_fixed_threshold_overrides_the_calibrated_ones(calibrated: Baseline) -> None:
    report = calibrated.compare(calibrated.tally(*draw(1000, seed=5)), 1000, 0.5)
    assert report.threshold == 0.5 and {d.threshold for d in report.features.values()} == {0.5}
    assert report.to_dict()["threshold"] == 0.5
    assert calibrated.compare(calibrated.tally(*draw(1000, seed=5)), 1000).to_dict()["threshold"] == "calibrated"


@pytest.mark.parametrize(("rate", "window"), [(0.0, 1000), (1.0, 1000), (0.01, 0)])
def test_a_rate_or_window_out_of_range_is_refused(calibrated: Baseline, rate: float, window: int) -> None:
    columns, predictions = draw(100, seed=6)
    with pytest.raises(ValueError, match="false-alarm rate|drift window"):
        calibrate(calibrated, columns, predictions, window=window, false_alarm_rate=rate)

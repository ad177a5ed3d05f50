"""The shift score: how far a number's served mean moved, in training's units, where PSI saturates.

Expected values by hand: two normal distributions of one spread whose means are d standard deviations apart have a
Jeffreys divergence of d**2 (the shift score's definition, with equal variances), and a window wholly past training's
last bin has a PSI fixed by the empty bins' floor, whatever d is."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from handler.__main__ import main
from handler.core.signature import TensorSpec
from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Drift
from handler.monitoring.emf import flagged_by
from tests.conftest import ROOT
from tests.monitoring import data

SPEC = TensorSpec("x", "float32")


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    x = np.random.default_rng(1).normal(0.0, 1.0, 20_000).astype(np.float32)
    return Baseline.fit([SPEC], [], {"x": x}, {})


def window(shift: float, seed: int = 2) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(shift, 1.0, 1000).astype(np.float32)}


@pytest.mark.parametrize("d", [10.0, 1000.0])
def test_the_shift_keeps_growing_where_psi_has_stopped(baseline: Baseline, d: float) -> None:
    drift = baseline.compare(baseline.tally(window(d), None), 1000, 0.1).features["x"]
    near = baseline.compare(baseline.tally(window(10.0), None), 1000, 0.1).features["x"]
    assert drift.score == pytest.approx(near.score, rel=1e-9), "PSI is saturated: every value in the last bin"
    assert drift.shift == pytest.approx(d * d, rel=0.05), drift.shift  # d**2, within the sample's mean and std
    assert drift.decision == drift.shift and drift.drifted
    assert drift.to_dict()["shift"] == pytest.approx(d * d, rel=0.05)


def test_a_fresh_window_shifts_about_one_over_its_rows(baseline: Baseline) -> None:
    """Chance alone: the mean of 1,000 values is off by about 1/sqrt(1000) std, a shift of about 1/1000 (chi-square
    with one degree of freedom over the rows): far under PSI's 9/1000."""
    shifts = [baseline.compare(baseline.tally(window(0.0, s), None), 1000, 0.1).features["x"].shift for s in range(200)]
    assert np.mean(shifts) == pytest.approx(1 / 1000, rel=0.3)  # type: ignore[arg-type]
    assert max(shifts) < 0.02  # type: ignore[type-var]


def test_a_feature_in_cents_reads_far_past_psis_ceiling(tmp_path: Path) -> None:
    """The issue's report: monthly_charges x100 and the churn probability both read PSI 8.28 to five decimals; the
    offline report now gives the feature's shift beside it."""
    columns = data.cents(data.churn(1000, seed=77), "monthly_charges")
    source = tmp_path / "cents.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in data.v1_rows(columns)))
    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(out):
        status = main(["drift", str(source), "--model-dir", str(ROOT / "model_artifacts" / "churn")])
    report = json.loads(out.getvalue())
    charges = report["features"]["monthly_charges"]
    assert status == 1 and "mean" in _flagged(charges)
    # Training's mean and std from baseline.json: the served mean is ~100x the training one.
    trained = json.loads((ROOT / "model_artifacts/churn/baseline.json").read_text())["features"]["monthly_charges"]
    d = 99 * trained["mean"] / trained["std"]
    # (99 mean)**2 / 2 * (1/std**2 + 1/(100 std)**2): d**2 / 2, the served spread's term a ten-thousandth of it.
    assert charges["shift"] == pytest.approx(d * d / 2, rel=0.05), (charges["shift"], d)
    assert charges["score"] < 10 < 1000 < charges["shift"], charges  # PSI at its floor's ceiling, the shift not


def _flagged(feature: dict) -> list[str]:
    """What drifted it, as the warning says: from the report's numbers against the feature's threshold."""
    t = feature["threshold"]
    return [
        name
        for name, key in (("psi", "score"), ("dispersion", "dispersion"), ("mean", "shift"))
        if feature.get(key, 0) > t
    ]


def test_a_feature_moved_by_its_mean_alone_is_flagged_by_the_mean() -> None:
    drift = Drift(name="x", kind="numeric", score=0.01, drifted=True, values=1000, channel=None, served=(), shift=0.5)
    assert flagged_by(drift) == {"psi": 0.01, "threshold": 0.1, "shift": 0.5, "flagged_by": ["mean"]}
    assert drift.decision == 0.5

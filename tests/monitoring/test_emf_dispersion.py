"""The alarmed series fires for a feature flagged by its dispersion alone, through the served path.

Sensor readings with their noise doubled (std 0.15 to 0.3) keep their bins' shares (PSI about 0.03) but
spread their steps between neighbouring positions: one window of 1,000 rows goes through `lambda_handler`
(direct invokes, LiteRT) and the EMF lines printed are read back. The expected dispersion is worked out
with numpy from the raw rows and the training stds baseline.json records, not by the watch's code.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import ARTIFACTS, emf_lines, log_messages, make_function
from training import sensor

THRESHOLD = 0.1


def jeffreys(served_std: np.ndarray, training_std: np.ndarray) -> np.ndarray:
    """(r + 1/r) / 2 - 1 of the variance ratio r, per channel (docs/drift.md)."""
    r = (served_std / training_std) ** 2
    return (r + 1 / r) / 2 - 1


def test_doubled_sensor_noise_reaches_feature_drift_max_through_the_served_path(
    capture_stdout: Callable[[], str], logs: io.StringIO
) -> None:
    readings = data.sensor_readings(1000, 4100, noise=2 * sensor.NOISE)["readings"]
    handler = make_function("sensor").handler()
    for start in range(0, 1000, 500):
        answer = handler({"instances": readings[start : start + 500].tolist()}, LambdaContext())
        assert len(answer["predictions"]) == 500
    lines = emf_lines(capture_stdout())
    (line,) = [
        line for line in lines if line["dimensions"].get("feature") == "readings" and "FeatureDrift" in line["metrics"]
    ]
    (summary,) = [line for line in lines if "FeatureDriftMax" in line["metrics"]]

    # What the function serves: the rows as float32, [examples, 20 steps, 3 channels].
    served = np.asarray(readings, dtype=np.float32).astype(np.float64)
    trained = json.loads((ARTIFACTS / "sensor" / "baseline.json").read_text())["features"]["readings"]
    steps = np.diff(served, axis=1).reshape(-1, sensor.CHANNELS)
    values = served.reshape(-1, sensor.CHANNELS)
    expected = max(
        jeffreys(values.std(axis=0), np.asarray(trained["std"])).max(),
        jeffreys(steps.std(axis=0), np.asarray(trained["step_std"])).max(),
    )
    (dispersion,) = line["metrics"]["FeatureDispersion"]
    (psi,) = line["metrics"]["FeaturePSI"]
    assert dispersion == pytest.approx(expected, rel=1e-6), (dispersion, expected)
    assert psi < THRESHOLD < dispersion, f"expected a dispersion-only drift: PSI {psi}, dispersion {dispersion}"
    assert line["metrics"]["FeatureDrift"] == [dispersion]
    (alarmed,) = summary["metrics"]["FeatureDriftMax"]
    assert alarmed >= dispersion > THRESHOLD, f"FeatureDriftMax {alarmed}: the alarm would not fire"
    assert summary["metrics"]["DriftedFeatures"] == [1.0]
    (warning,) = [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]
    assert warning["drifted_features"]["readings"]["flagged_by"] == ["step_std"], warning

"""Every drifted channel of a tensor is named, online (EMF lines, the warning) and offline (the report's JSON).

Sensor readings have three channels. An offset of 0.3 on all of them moves each channel's histogram
(PSI about 0.3 each, where a fresh window scores under 0.01) and its block means (about 1); an offset on
channel 1 alone moves only it. The expected per-channel scores are worked out here with numpy from the
raw rows and baseline.json (PSI over its recorded edges and fractions, empty bins floored at 1e-4 as
docs/drift.md defines it; the stds' Jeffreys score against its recorded stds; the block means' score),
not by the watch's code.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from tests.conftest import ROOT, LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import ARTIFACTS, emf_lines, log_messages, make_function
from training import sensor

THRESHOLD = 0.1
FLOOR = 1e-4


def channel_scores(readings: np.ndarray) -> list[float]:
    """Per channel, the larger of its PSI and its dispersion score (std and steps' std), by numpy."""
    trained = json.loads((ARTIFACTS / "sensor" / "baseline.json").read_text())["features"]["readings"]
    served = np.asarray(readings, dtype=np.float32).astype(np.float64)  # as the function serves them
    values, steps = served.reshape(-1, sensor.CHANNELS), np.diff(served, axis=1).reshape(-1, sensor.CHANNELS)
    out = []
    for c in range(sensor.CHANNELS):
        edges, q = np.asarray(trained["bins"][c]["edges"]), np.asarray(trained["bins"][c]["fractions"])
        counts = np.bincount(np.searchsorted(edges, values[:, c], side="right"), minlength=len(q))
        p, q = np.maximum(counts / counts.sum(), FLOOR), np.maximum(q, FLOOR)
        psi = float(np.sum((p - q) * np.log(p / q)))
        spreads = []
        for found, of in ((values[:, c].std(), "std"), (steps[:, c].std(), "step_std")):
            r = (found / trained[of][c]) ** 2
            spreads.append((r + 1 / r) / 2 - 1)
        out.append(max(psi, *spreads, block_map(served[:, :, c], trained, c)))
    return out


def block_map(channel: np.ndarray, trained: dict[str, Any], c: int) -> float:
    """The positional map's score of one channel ([examples, 20 steps]): 8 runs of steps (of 3, 3, 3, 3, 2, 2, 2, 2),
    each example's mean per run; the sum over runs of the squared difference of the window's mean from training's in
    training's stds across examples (floored at a tenth of the channel's std), less 8 / examples (docs/drift.md)."""
    runs = np.split(np.arange(20), [3, 6, 9, 12, 14, 16, 18])
    served = np.stack([channel[:, r].mean(axis=1) for r in runs], axis=1).mean(axis=0)
    mean = np.asarray(trained["block_mean"])[:, c]
    std = np.maximum(np.asarray(trained["block_std"])[:, c], 0.1 * trained["std"][c])
    return max(float((((served - mean) / std) ** 2).sum()) - 8 / len(channel), 0.0)


def offset(channels: list[int], seed: int) -> np.ndarray:
    readings = data.sensor_readings(1000, seed)["readings"].copy()
    readings[..., channels] += np.float32(0.3)
    return readings


def serve(readings: np.ndarray, stdout: Callable[[], str], logs: io.StringIO) -> tuple[list[dict], dict[str, Any]]:
    """One 1,000-row window through lambda_handler (LiteRT): its EMF lines and the warning's readings entry."""
    handler = make_function("sensor").handler()
    for start in range(0, 1000, 500):
        answer = handler({"instances": readings[start : start + 500].tolist()}, LambdaContext())
        assert len(answer["predictions"]) == 500
    lines = emf_lines(stdout())
    warnings = [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]
    found = warnings[0]["drifted_features"].get("readings", {}) if warnings else {}
    return lines, found


def channel_lines(lines: list[dict]) -> dict[int, float]:
    out = {}
    for line in lines:
        if "ChannelDrift" in line["metrics"]:
            assert set(line["dimensions"]) >= {"feature", "channel"}, line["dimensions"]
            assert line["dimensions"]["feature"] == "readings"
            (out[int(line["dimensions"]["channel"])],) = line["metrics"]["ChannelDrift"]
    return out


@pytest.mark.parametrize(("channels", "seed"), [([0, 1, 2], 4300), ([1], 4301)], ids=["every channel", "channel 1"])
def test_an_offset_names_every_channel_it_moved_through_the_served_path(
    channels: list[int], seed: int, capture_stdout: Callable[[], str], logs: io.StringIO
) -> None:
    readings = offset(channels, seed)
    expected = channel_scores(readings)
    # Why these channels: the offset (twice the noise's std) moves each offset channel's histogram, not the others.
    assert [c for c, s in enumerate(expected) if s > THRESHOLD] == channels, expected
    lines, warned = serve(readings, capture_stdout, logs)

    emitted = channel_lines(lines)
    assert sorted(emitted) == channels, f"ChannelDrift lines for channels {sorted(emitted)}, offset on {channels}"
    for c in channels:
        assert emitted[c] == pytest.approx(expected[c], rel=1e-6), (c, emitted[c], expected[c])
    assert warned["channels"] == channels, warned
    # The alarmed series keep their dimensions: the feature alone, or none but the deployment's.
    (feature,) = [
        line for line in lines if line["dimensions"].get("feature") == "readings" and "FeatureDrift" in line["metrics"]
    ]
    assert "channel" not in feature["dimensions"]
    (summary,) = [line for line in lines if "FeatureDriftMax" in line["metrics"]]
    assert not {"feature", "channel"} & set(summary["dimensions"])
    assert summary["metrics"]["FeatureDriftMax"][0] == pytest.approx(max(expected), rel=1e-6)


def test_a_fresh_window_names_no_channel(capture_stdout: Callable[[], str], logs: io.StringIO) -> None:
    readings = data.sensor_readings(1000, 4302)["readings"]
    assert max(channel_scores(readings)) < THRESHOLD
    lines, warned = serve(readings, capture_stdout, logs)
    assert channel_lines(lines) == {} and warned == {}


@pytest.mark.parametrize(("channels", "seed"), [([0, 1, 2], 4303), ([1], 4304)], ids=["every channel", "channel 1"])
def test_the_report_lists_the_drifted_channels_beside_the_worst(
    channels: list[int], seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readings = offset(channels, seed)
    assert [c for c, s in enumerate(channel_scores(readings)) if s > THRESHOLD] == channels
    source = tmp_path / "served.jsonl"
    source.write_text("".join(json.dumps({"readings": r.tolist()}) + "\n" for r in readings))
    capsys.readouterr()
    status = main(["drift", str(source), "--model-dir", str(ROOT / "model_artifacts" / "sensor")])
    found = json.loads(capsys.readouterr().out)["features"]["readings"]
    assert status == 1
    assert found["drifted_channels"] == channels, found
    # `channel` stays the channel of the largest PSI (backward compatible), one of those listed.
    assert found["channel"] in channels


def test_an_outputs_drifted_channels_get_prediction_channel_lines(capture_stdout: Callable[[], str]) -> None:
    from handler.monitoring.drift import Drift, DriftReport
    from handler.monitoring.emf import emit

    # A hand-made softmax output whose classes 3 and 7 passed the threshold (scores written here, not computed).
    probs = Drift("output_0", "tensor", 0.5, True, 100, 3, (), drifted_channels=((3, 0.5), (7, 0.25)))
    capture_stdout()
    emit(DriftReport(rows=100, threshold=THRESHOLD, features={}, outputs={"output_0": probs}))
    found = {
        (line["dimensions"]["output"], line["dimensions"]["channel"]): line["metrics"]["PredictionChannelDrift"]
        for line in emf_lines(capture_stdout())
        if "PredictionChannelDrift" in line["metrics"]
    }
    assert found == {("output_0", "3"): [0.5], ("output_0", "7"): [0.25]}

"""Each feature's drift threshold at export: drawn from held-out rows when the user gives them (holdout_data, else
validation_data's rows), else from the training rows; the window and the false-alarm rate from the call or the
command line. The thresholds' own promise is tested in tests/monitoring/test_calibration.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.errors import ExportError
from tests.export.test_cli_quality import _export as _cli_export
from tests.export.test_cli_quality import _write_rows, folder  # noqa: F401 (a fixture)
from tests.export.test_quality_baseline import _export, _p, _rows, _scorer


def _calibration(out: Path) -> tuple[dict[str, Any], dict[str, float]]:
    baseline = json.loads((out / "baseline.json").read_text())
    thresholds = {n: r["threshold"] for side in ("features", "outputs") for n, r in baseline[side].items()}
    return baseline["calibration"], thresholds


@pytest.mark.parametrize("given", ["holdout", "validation", "none"])
def test_the_windows_come_from_held_out_rows_when_there_are_some(tmp_path: Path, given: str) -> None:
    held_out = _rows(5, 700)
    labels = (np.random.default_rng(6).uniform(size=700) < _p(held_out)).astype(int)
    kwargs: dict[str, Any] = {"training_data": _rows(4, 1500), "drift_window": 300, "false_alarm_rate": 0.01}
    if given == "holdout":
        kwargs["holdout_data"] = held_out
    elif given == "validation":
        kwargs["validation_data"] = (held_out, labels)
    _export(tmp_path / "m", _scorer(), **kwargs)
    calibration, thresholds = _calibration(tmp_path / "m")
    source, rows = ("training", 1500) if given == "none" else ("held_out", 700)
    assert calibration == {
        "window": 300,
        "false_alarm_rate": 0.01,
        "draws": 200,
        "training_rows": 1500,
        "source": source,
        "source_rows": rows,
    }
    assert set(thresholds) == {"a", "b", "output_0"}
    # Ten bins at 300 rows: chance scores near 9/300 = 0.03; the 0.5% tail (0.01 over two features) a few times that.
    assert all(0.03 < t < 0.3 for t in thresholds.values()), thresholds


def test_a_higher_false_alarm_rate_gives_lower_thresholds(tmp_path: Path) -> None:
    for rate in (0.001, 0.1):
        _export(tmp_path / str(rate), _scorer(), training_data=_rows(4, 1500), false_alarm_rate=rate)
    strict, loose = (_calibration(tmp_path / str(rate))[1] for rate in (0.001, 0.1))
    assert all(loose[n] < strict[n] for n in strict), (strict, loose)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"false_alarm_rate": 0.0}, "false_alarm_rate must lie strictly between 0 and 1, got 0.0"),
        ({"false_alarm_rate": 1.5}, "false_alarm_rate must lie strictly between 0 and 1, got 1.5"),
        ({"drift_window": 0}, "drift_window must be at least 1 row, got 0"),
        ({"holdout_data": {"a": [0.1]}}, "holdout_data must have exactly the features a client sends (a, b): missing"),
    ],
)
def test_a_wrong_calibration_argument_is_refused_naming_it(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ExportError) as refused:
        _export(tmp_path / "m", _scorer(), training_data=_rows(4, 500), **kwargs)
    assert message in refused.value.message
    assert not (tmp_path / "m").exists(), "a refused export writes nothing"


def test_the_command_line_sets_the_window_and_the_rate(folder: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    _write_rows(folder / "training.jsonl", _rows(11, 1000))
    code, _, err = _cli_export(
        capsys, "--training", "training.jsonl", "--drift-window", "250", "--false-alarm-rate", "0.05"
    )
    assert code == 0, err
    calibration, _ = _calibration(folder / "out")
    assert (calibration["window"], calibration["false_alarm_rate"], calibration["source"]) == (250, 0.05, "training")
    code, _, err = _cli_export(capsys, "--training", "training.jsonl", "--false-alarm-rate", "2")
    assert (code, err) == (1, "error: false_alarm_rate must lie strictly between 0 and 1, got 2.0")  # as every refusal


def test_the_command_line_names_a_classifiers_classes(folder: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    """One sigmoid score: two names, negative then positive, recorded in the manifest (TF Serving's :classify and the
    drift page's classes read them); a count that fits no score is refused naming the output."""
    code, _, err = _cli_export(capsys, "--class-names", "stays", "churns")
    assert code == 0, err
    assert json.loads((folder / "out" / "manifest.json").read_text())["class_names"] == ["stays", "churns"]
    code, _, err = _cli_export(capsys, "--class-names", "a", "b", "c")
    assert code == 1 and err.startswith("error: class_names has 3 names but output 'output_0'"), err


def test_held_out_rows_without_labels_come_from_the_command_line(folder: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    _write_rows(folder / "training.jsonl", _rows(11, 1000))
    _write_rows(folder / "holdout.jsonl", _rows(12, 400))
    code, _, err = _cli_export(capsys, "--training", "training.jsonl", "--holdout", "holdout.jsonl")
    assert code == 0, err
    calibration, _ = _calibration(folder / "out")
    assert (calibration["source"], calibration["source_rows"], calibration["training_rows"]) == ("held_out", 400, 1000)
    (folder / "broken.jsonl").write_text('{"inputs": {"a": 1.0, "b": 2.0}}\nnot json\n')
    code, _, err = _cli_export(capsys, "--training", "training.jsonl", "--holdout", "broken.jsonl")
    assert code == 1 and err.startswith("error: broken.jsonl line 2 (--holdout) is not JSON"), err

"""`skewless export MODEL.keras ... --training ROWS --validation ROWS`: baseline.json and quality_baseline.json from
the command line, rows as JSON Lines. Expected metrics are worked out here in numpy from the model's weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from tests.export.test_quality_baseline import _p, _rows, _scorer

N = 300


def _write_rows(path: Path, rows: dict[str, np.ndarray], labels: Any = None) -> Path:
    lines = []
    for i in range(len(rows["a"])):
        record: dict[str, Any] = {"inputs": {"a": float(rows["a"][i]), "b": float(rows["b"][i])}}
        if labels is not None:
            record["label"] = int(labels[i])
        lines.append(json.dumps(record) + "\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's folder, the working directory of the command: the saved model and its sample request."""
    monkeypatch.chdir(tmp_path)
    _scorer().save(tmp_path / "scorer.keras")
    (tmp_path / "requests.json").write_text(json.dumps({"one": {"instances": [{"a": 0.1, "b": 0.2}]}}))
    return tmp_path


def _export(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    argv = ["export", "scorer.keras", "--requests", "requests.json", "--out", "out", "--name", "m", "--version", "1"]
    code = main([*argv, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_validation_rows_from_a_file_give_the_quality_baseline(folder: Path, capsys: pytest.CaptureFixture) -> None:
    held_out = _rows(12, N)
    p = _p(held_out)
    y = (np.random.default_rng(13).uniform(size=N) < p).astype(int)
    _write_rows(folder / "training.jsonl", _rows(11, 1000))
    _write_rows(folder / "validation.jsonl", held_out, y)
    code, out, err = _export(capsys, "--training", "training.jsonl", "--validation", "validation.jsonl")
    assert code == 0, err
    assert "quality_baseline.json" in out and "baseline.json" in out
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    body = (folder / "out" / "quality_baseline.json").read_bytes()
    assert manifest["files"]["quality_baseline.json"] == hashlib.sha256(body).hexdigest()
    assert manifest["problem"] == {"type": "binary", "output": "output_0"}
    base = json.loads(body)
    answered = p >= 0.5
    tp, fp, fn = np.sum(answered & (y == 1)), np.sum(answered & (y == 0)), np.sum(~answered & (y == 1))
    assert base["rows"] == N
    assert base["metrics"]["accuracy"]["value"] == pytest.approx(np.mean(answered == (y == 1)), abs=1e-6)
    assert base["metrics"]["f1"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert set(base["slices"]) == {"a", "b"}, "the training rows' bins slice the held-out rows"
    assert sum(s["rows"] for s in base["slices"]["b"].values()) == N


def test_a_named_problem_is_recorded_from_the_command_line(folder: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _export(capsys, "--problem", "regression")
    assert code == 0, err
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    assert manifest["problem"] == {"type": "regression", "output": "output_0"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (
            '{"inputs": {"a": 1.0, "b": 2.0}, "label": 1}\nnot json\n',
            "validation.jsonl line 2 (--validation) is not JSON",
        ),
        (
            '{"inputs": {"a": 1.0, "b": 2.0}}\n',
            'validation.jsonl line 1 (--validation) has no "label": every validation',
        ),
        (
            '{"a": 1.0, "label": 0}\n',
            'validation.jsonl line 1 (--validation) has no "inputs" object of feature -> value',
        ),
        (
            '{"inputs": {"a": 1.0, "b": 2.0}, "label": 1}\n\n{"inputs": {"a": 1.0}, "label": 0}\n',
            "validation.jsonl line 3 (--validation) has features ['a'], the lines before ['a', 'b']: every row needs",
        ),
        ("\n", "the validation rows validation.jsonl (--validation) hold no row"),
    ],
)
def test_validation_rows_that_cannot_be_read_are_refused_naming_the_line_and_why(
    folder: Path, capsys: pytest.CaptureFixture, content: str, why: str
) -> None:
    (folder / "validation.jsonl").write_text(content)
    code, _, err = _export(capsys, "--validation", "validation.jsonl")
    assert code == 1 and err.startswith("error: ") and why in err, err
    assert not (folder / "out").exists()


def test_rows_with_other_features_than_the_models_are_refused_by_name(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    (folder / "validation.jsonl").write_text('{"inputs": {"a": 1.0, "c": 2.0}, "label": 1}\n')
    code, _, err = _export(capsys, "--validation", "validation.jsonl")
    assert code == 1 and "validation_data must have exactly the features a client sends (a, b)" in err, err
    assert "missing ['b']" in err and "unknown ['c']" in err
    code, _, err = _export(capsys, "--validation", "nowhere.jsonl")
    assert code == 1 and "cannot read the validation rows nowhere.jsonl (--validation)" in err, err

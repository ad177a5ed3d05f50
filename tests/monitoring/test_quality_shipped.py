"""The churn reference model ships its quality baseline: quality_baseline.json, listed and hashed in the manifest,
holding the metrics of the committed model on held-out rows regenerated here (worked out by hand from the weights
and preprocessing.json), so `python -m handler quality` and the labels trigger compare with it by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from handler.core.artifacts import Artifacts, sha256_of
from tests.monitoring.conftest import ARTIFACTS
from tests.monitoring.quality_data import churn_window, flipped
from training import churn, churn_data

CHURN = ARTIFACTS / "churn"


def _features(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The model's input, by hand from preprocessing.json: standardize, minmax, passthrough, one-hot."""
    spec = json.loads((CHURN / "preprocessing.json").read_text())
    parts = []
    for f in spec["features"]:
        x = columns[f["name"]]
        if f["kind"] == "categorical":
            parts += [(x == word).astype(np.float64) for word in f["vocabulary"]]
        elif f["op"] == "standardize":
            parts.append((x - f["mean"]) / f["std"])
        elif f["op"] == "minmax":
            parts.append((x - f["min"]) / (f["max"] - f["min"]))
        else:
            parts.append(x.astype(np.float64))
    return np.stack(parts, axis=1).astype(np.float32)


def _scores(x: np.ndarray) -> np.ndarray:
    """The committed model.keras by hand: two ReLU layers, the logit, divided by the temperature, the sigmoid."""
    import keras

    import handler.custom_objects  # noqa: F401  (registers Temperature)

    model = keras.saving.load_model(CHURN / "model.keras", compile=False)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    (w1, b1), (w2, b2), (w3, b3) = (layer.get_weights() for layer in dense)
    temperature = model.get_layer("temperature").get_config()["temperature"]
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    logit = (h @ w3 + b3)[:, 0] / np.float32(temperature)
    return (1 / (1 + np.exp(-logit.astype(np.float64)))).astype(np.float64)


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney: the chance a positive row scores above a negative one (ties count half), by average ranks."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):
        ranks[scores == value] = ranks[scores == value].mean()
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def test_churn_ships_quality_baseline_json_listed_and_hashed_in_the_manifest() -> None:
    manifest = json.loads((CHURN / "manifest.json").read_text())
    assert manifest["files"]["quality_baseline.json"] == sha256_of(CHURN / "quality_baseline.json")
    assert manifest["problem"] == {"type": "binary", "output": "output_0"}
    Artifacts.open(CHURN)  # the digest covers it: the artifact still opens


def test_the_validation_rows_are_held_out_from_training() -> None:
    assert churn.VALIDATION_SEED not in (42, 43), "training draws seed 42 and 43 (the sample requests)"
    train, _ = churn_data.generate(6000, 42)
    held, _ = churn_data.generate(churn.VALIDATION_ROWS, churn.VALIDATION_SEED)
    key = ("tenure_months", "monthly_charges", "total_charges", "age", "days_since_last_login", "data_usage_gb")
    seen = set(zip(*(train[k].tolist() for k in key), strict=True))
    assert not any(row in seen for row in zip(*(held[k].tolist() for k in key), strict=True))


def test_the_baseline_metrics_are_the_committed_models_on_the_regenerated_validation_rows() -> None:
    shipped = json.loads((CHURN / "quality_baseline.json").read_text())
    columns, labels = churn_data.generate(4000, 5000)
    y = labels.astype(np.int64)
    scores = _scores(_features(columns))
    assert np.min(np.abs(scores - 0.5)) > 1e-5, "a score at the threshold: float rounding could move it"
    said = scores >= 0.5
    tp, fp = int(np.sum(said & (y == 1))), int(np.sum(said & (y == 0)))
    fn, tn = int(np.sum(~said & (y == 1))), int(np.sum(~said & (y == 0)))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    expected = {
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "auc": _auc(scores, y),
    }
    assert shipped["problem"] == "binary" and shipped["output"] == "output_0" and shipped["rows"] == 4000
    assert shipped["confusion_matrix"] == [[tn, fp], [fn, tp]]
    metrics = shipped["metrics"]
    assert sorted(metrics) == sorted(expected)
    for name, value in expected.items():
        assert metrics[name]["value"] == pytest.approx(value, abs=1e-6), name
        low, high = metrics[name]["interval"]
        assert low < value < high, f"{name} {value} outside its interval {low}..{high}"
    # accuracy's bootstrap interval is about the binomial one: 2 x 1.96 x sqrt(a(1 - a)/n) wide
    a = expected["accuracy"]
    low, high = metrics["accuracy"]["interval"]
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(a * (1 - a) / len(y)), rel=0.15)
    contract = shipped["slices"]["contract_type"]
    assert sum(s["rows"] for s in contract.values()) == 4000


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, flip: bool) -> tuple[int, dict[str, Any]]:
    window = churn_window(1000, 7201)
    captured, labels = tmp_path / "captured.jsonl", tmp_path / "labels.jsonl"
    captured.write_text("\n".join(window.capture_lines("day-1")) + "\n")
    labels.write_text("\n".join(window.label_lines("day-1", flipped(window) if flip else None)) + "\n")
    capsys.readouterr()
    status = main(["quality", str(captured), str(labels), "--model-dir", str(CHURN)])
    return status, json.loads(capsys.readouterr().out)


def test_the_quality_command_compares_churn_with_its_shipped_baseline_without_being_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = json.loads((CHURN / "quality_baseline.json").read_text())["metrics"]
    status, report = _run(capsys, tmp_path, flip=False)
    assert status == 0 and report["degraded"] == [], report["baseline"]
    assert report["problem"]["from"] == "the quality baseline"
    assert report["baseline"]["accuracy"]["baseline"] == shipped["accuracy"]["value"]
    status, report = _run(capsys, tmp_path, flip=True)  # two-year contracts' labels turned over
    assert status == 1 and "accuracy" in report["degraded"], report["baseline"]
    assert report["slices"]["worst"][0]["slice"] == "two_year"

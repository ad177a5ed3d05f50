"""baseline.json at export: hashed in the manifest, the training data's statistics, the model's answers to it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.errors import ExportError
from tests.conftest import ROOT
from training import churn_data

MODELS = ("churn", "digits", "reviews", "recommender", "sensor")


@pytest.mark.parametrize("model", MODELS)
def test_every_reference_model_lists_and_hashes_its_baseline(model: str) -> None:
    folder = ROOT / "model_artifacts" / model
    manifest = json.loads((folder / "manifest.json").read_text())
    digest = hashlib.sha256((folder / "baseline.json").read_bytes()).hexdigest()
    assert manifest["files"]["baseline.json"] == digest
    baseline = json.loads((folder / "baseline.json").read_text())
    assert list(baseline["features"]) == [f["name"] for f in manifest["signature"]["features"]]
    assert list(baseline["outputs"]) == [o["name"] for o in manifest["signature"]["outputs"]]


def test_churns_baseline_describes_its_training_data() -> None:
    """Regenerated here from the training module's generator and seed (training.churn: 6000 rows, seed 42)."""
    columns, _ = churn_data.generate(6000, 42)
    baseline = json.loads((ROOT / "model_artifacts" / "churn" / "baseline.json").read_text())
    assert baseline["rows"] == 6000
    charges = baseline["features"]["monthly_charges"]
    x = columns["monthly_charges"]
    assert (charges["count"], charges["missing"]) == (6000, 0)
    assert charges["mean"] == pytest.approx(x.mean()) and charges["std"] == pytest.approx(x.std())
    assert (charges["min"], charges["max"]) == (x.min(), x.max())
    contract = baseline["features"]["contract_type"]
    (bins,) = contract["bins"]
    values, counts = np.unique(columns["contract_type"].astype(str), return_counts=True)
    share = dict(zip(values.tolist(), (counts / 6000).tolist(), strict=True))
    assert dict(zip(bins["values"], bins["fractions"][:-1], strict=True)) == pytest.approx(share)
    assert bins["fractions"][-1] == 0.0 and contract["complete"] is True


def _tiny_model() -> Any:
    import keras

    x = keras.Input(shape=(3,), dtype="float32", name="x")
    model = keras.Model(x, keras.layers.Dense(1, name="y")(x))
    model.set_weights([np.array([[0.5], [-1.0], [2.0]], dtype=np.float32), np.array([0.25], dtype=np.float32)])
    return model


def _export(tmp_path: Path, training_data: Any) -> dict[str, Any]:
    from handler.export import export_model

    sample = {"one": {"instances": [[1.0, 2.0, 3.0]]}}
    return export_model(
        _tiny_model(), None, sample, tmp_path / "tiny", name="tiny", version="1", training_data=training_data,
        litert_runtime=False,
    )  # fmt: skip


def test_export_writes_the_features_and_the_models_answers_to_them(tmp_path: Path) -> None:
    x = np.random.default_rng(11).normal(0.0, 1.0, (500, 3)).astype(np.float32)
    manifest = _export(tmp_path, {"x": x})
    path = tmp_path / "tiny" / "baseline.json"
    assert manifest["files"]["baseline.json"] == hashlib.sha256(path.read_bytes()).hexdigest()
    baseline = json.loads(path.read_text())
    feature = baseline["features"]["x"]
    assert (feature["kind"], feature["count"], len(feature["bins"])) == ("tensor", 500, 3)
    assert feature["mean"] == pytest.approx(x.astype(np.float64).mean(axis=0).tolist())
    assert feature["min"] == x.min(axis=0).tolist() and feature["max"] == x.max(axis=0).tolist()
    y = x.astype(np.float64) @ np.array([0.5, -1.0, 2.0]) + 0.25  # the layer's weights, set above
    answer = baseline["outputs"]["output_0"]
    assert answer["mean"] == pytest.approx([y.mean()], rel=1e-5)
    assert answer["min"] == pytest.approx([y.min()], rel=1e-5) and answer["max"] == pytest.approx([y.max()], rel=1e-5)


def test_export_without_training_data_writes_no_baseline(tmp_path: Path) -> None:
    manifest = _export(tmp_path, None)
    assert "baseline.json" not in manifest["files"] and not (tmp_path / "tiny" / "baseline.json").exists()


@pytest.mark.parametrize(
    ("training_data", "message"),
    [
        ({}, "training_data must have exactly the features a client sends (x): missing ['x']"),
        ({"x": np.zeros((4, 3)), "label": np.zeros(4)}, "unknown ['label']"),
        ({"x": np.zeros((4, 2))}, "training_data['x'] has shape [4, 2]; a client sends float32 [3] per example, so it"),
        ({"x": np.array([["a", "b", "c"]])}, "training_data['x'] must hold numbers (float32)"),
        ({"x": np.zeros((0, 3))}, "need the same, non-zero number of rows"),
        ([[1.0, 2.0, 3.0]], "training_data must be a dict of feature -> array (batch axis first), got list"),
    ],
)  # fmt: skip
def test_training_data_that_does_not_fit_the_signature_is_refused_and_nothing_written(
    tmp_path: Path, training_data: Any, message: str
) -> None:
    with pytest.raises(ExportError) as refused:
        _export(tmp_path, training_data)
    assert message in str(refused.value)
    assert not (tmp_path / "tiny").exists()

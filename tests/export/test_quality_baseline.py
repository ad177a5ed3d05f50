"""quality_baseline.json at export: the model's metrics on held-out rows, hashed in the manifest with the problem,
and what the quality command then compares served labels with. Expected metrics are worked out here in numpy from
the models' weights, set by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.__main__ import main
from handler.core.artifacts import Artifacts
from handler.errors import ArtifactError, ExportError

N = 400


def _scorer() -> Any:
    """p = sigmoid(a - 2 b + 0.5), from two named scalar inputs."""
    import keras

    a, b = keras.Input(shape=(), name="a"), keras.Input(shape=(), name="b")
    score = keras.layers.Dense(1, activation="sigmoid", name="p")(keras.ops.stack([a, b], axis=1))
    model = keras.Model({"a": a, "b": b}, score)
    model.set_weights([np.array([[1.0], [-2.0]], dtype=np.float32), np.array([0.5], dtype=np.float32)])
    return model


def _rows(seed: int, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(0, 1, n).astype(np.float32), "b": rng.normal(0, 1, n).astype(np.float32)}


def _p(rows: dict[str, np.ndarray]) -> np.ndarray:
    return 1 / (1 + np.exp(-(rows["a"].astype(np.float64) - 2 * rows["b"] + 0.5)))


SCORER_SAMPLE = {"one": {"instances": [{"a": 0.1, "b": 0.2}]}}


def _export(out: Path, model: Any, sample: dict[str, Any] = SCORER_SAMPLE, **kwargs: Any) -> dict[str, Any]:
    from handler.export import export_model

    return export_model(model, None, sample, out, name="m", version="1", litert_runtime=False, **kwargs)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], np.ndarray, np.ndarray]:
    """The scorer exported with training rows and 400 held-out rows labelled by its own chances (seeded)."""
    held_out = _rows(2)
    p = _p(held_out)
    labels = (np.random.default_rng(3).uniform(size=N) < p).astype(int)
    out = tmp_path_factory.mktemp("quality") / "scorer"
    manifest = _export(out, _scorer(), training_data=_rows(1, 2000), validation_data=(held_out, labels))
    return out, manifest, p, labels


def test_the_baseline_is_listed_hashed_and_the_problem_recorded(scorer: Any) -> None:
    out, manifest, _, _ = scorer
    body = (out / "quality_baseline.json").read_bytes()
    assert manifest["files"]["quality_baseline.json"] == hashlib.sha256(body).hexdigest()
    assert manifest["problem"] == {"type": "binary", "output": "output_0"}
    assert Artifacts.open(out).manifest.digest == manifest["digest"]  # the digest covers the new key and file
    (out / "quality_baseline.json").write_bytes(body.replace(b'"rows": 400', b'"rows": 401'))
    with pytest.raises(ArtifactError, match="quality_baseline.json does not match manifest.json"):
        Artifacts.open(out)
    (out / "quality_baseline.json").write_bytes(body)


def test_the_metrics_are_the_models_on_the_held_out_rows_with_intervals_around_them(scorer: Any) -> None:
    out, _, p, y = scorer
    base = json.loads((out / "quality_baseline.json").read_text())
    answered = p >= 0.5
    tp, fp, fn = np.sum(answered & (y == 1)), np.sum(answered & (y == 0)), np.sum(~answered & (y == 1))
    positives, negatives = p[y == 1][:, None], p[y == 0][None, :]
    pairs = np.mean((positives > negatives) + 0.5 * (positives == negatives))  # every (positive, negative) pair
    expected = {
        "accuracy": np.mean(answered == (y == 1)),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "auc": pairs,
    }
    assert (base["problem"], base["output"], base["rows"]) == ("binary", "output_0", N)
    for name, value in expected.items():
        got = base["metrics"][name]
        assert got["value"] == pytest.approx(value, abs=1e-6), name
        lo, hi = got["interval"]
        assert lo < value < hi and hi - lo < 0.2, (name, got)
    assert base["confusion_matrix"] == [[int(N - tp - fp - fn), int(fp)], [int(fn), int(tp)]]
    assert base["bootstrap"] == {"resamples": 1000, "seed": 0, "confidence": 0.95}
    assert sum(s["rows"] for s in base["slices"]["a"].values()) == N and set(base["slices"]) == {"a", "b"}


def test_the_quality_command_compares_served_labels_with_the_exported_baseline(
    scorer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _, _, _ = scorer
    served = _rows(4, 1000)
    p = _p(served)
    truth = (np.random.default_rng(5).uniform(size=1000) < p).astype(int)
    captured = tmp_path / "captured.jsonl"
    records = [
        {"inference_id": f"r/{i}", "instance": {"a": float(served["a"][i]), "b": float(served["b"][i])},
         "outputs": {"output_0": [float(p[i])]}}
        for i in range(1000)
    ]  # fmt: skip
    captured.write_text("".join(json.dumps(r) + "\n" for r in records))
    every = ["accuracy", "precision", "recall", "f1", "auc"]
    for labels, status, degraded in ((truth, 0, []), (1 - truth, 1, every)):  # as the model was made; turned over
        path = tmp_path / "labels.jsonl"
        path.write_text(
            "".join(json.dumps({"inference_id": f"r/{i}", "label": int(v)}) + "\n" for i, v in enumerate(labels))
        )
        capsys.readouterr()
        assert main(["quality", str(captured), str(path), "--model-dir", str(out)]) == status
        report = json.loads(capsys.readouterr().out)
        assert report["problem"]["from"] == "the quality baseline" and report["degraded"] == degraded


def test_a_regression_baseline_from_held_out_values(tmp_path: Path) -> None:
    import keras

    x = keras.Input(shape=(3,), dtype="float32", name="x")
    model = keras.Model(x, keras.layers.Dense(1, name="y")(x))
    model.set_weights([np.array([[0.5], [-1.0], [2.0]], dtype=np.float32), np.array([0.25], dtype=np.float32)])
    inputs = np.random.default_rng(6).normal(0, 1, (300, 3)).astype(np.float32)
    predicted = inputs.astype(np.float64) @ np.array([0.5, -1.0, 2.0]) + 0.25
    truth = predicted + np.random.default_rng(7).normal(0, 0.3, 300)
    sample = {"one": {"instances": [[1.0, 2.0, 3.0]]}}
    manifest = _export(tmp_path / "reg", model, sample, validation_data=({"x": inputs}, truth))
    base = json.loads((tmp_path / "reg" / "quality_baseline.json").read_text())
    assert manifest["problem"] == {"type": "regression", "output": "output_0"} and base["slices"] == {}
    error = predicted - truth
    spread = np.sum((truth - truth.mean()) ** 2)
    for name, value in {
        "mae": np.mean(np.abs(error)),
        "mse": np.mean(error**2),
        "rmse": np.sqrt(np.mean(error**2)),
        "r2": 1 - np.sum(error**2) / spread,
    }.items():
        assert base["metrics"][name]["value"] == pytest.approx(value, rel=1e-5), name


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"validation_data": (_rows(8, 10), [0] * 9)}, "10 rows of inputs but 9 labels"),
        ({"validation_data": (_rows(8, 3), [0, 1, 2]), "problem": "binary"}, "validation_data's label 2: label 2 is"),
        ({"validation_data": ({"a": [0.0]}, [1])}, "validation_data must have exactly the features"),
        ({"validation_data": [_rows(8, 3)]}, "validation_data must be a pair"),
        ({"problem": "ranking"}, "problem='ranking': give one of binary, multiclass, regression"),
        ({"problem": "multiclass"}, "a multiclass model's gives a score a class"),
    ],
)
def test_held_out_rows_that_cannot_be_a_baseline_are_refused_saying_why(
    tmp_path: Path, kwargs: dict[str, Any], why: str
) -> None:
    with pytest.raises(ExportError, match=why):
        _export(tmp_path / "m", _scorer(), **kwargs)
    assert not (tmp_path / "m").exists()


def test_a_problem_named_without_rows_is_recorded_alone(tmp_path: Path) -> None:
    manifest = _export(tmp_path / "m", _scorer(), problem="regression")
    assert manifest["problem"] == {"type": "regression", "output": "output_0"}
    assert "quality_baseline.json" not in manifest["files"]

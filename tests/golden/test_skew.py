"""The three training/serving skew failures, each reproduced and shown caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.core.artifacts import sha256_of
from handler.errors import ExportError
from handler.export import export_model
from handler.preprocessing import CategoricalFeature, NumericFeature, Preprocessor
from tests.conftest import ROOT

THIS_MODULE = __name__


def _rehash(model_dir: Path, fname: str) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"][fname] = sha256_of(model_dir / fname)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


def _verify(model_dir: Path, runtime: str = "auto") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, "-m", "handler", "verify", "--runtime", runtime]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def test_serving_without_the_fitted_preprocessing_is_rejected_by_verify(artifacts_copy: Path) -> None:
    """A server that re-wrote preprocessing by hand (here: no scaling at all) must not pass."""
    fitted = Preprocessor.load(artifacts_copy / "preprocessing.json")
    unfitted = Preprocessor(
        features=tuple(
            NumericFeature(name=f.name, op="passthrough") if isinstance(f, NumericFeature) else f
            for f in fitted.features
        )
    )
    unfitted.save(artifacts_copy / "preprocessing.json")
    _rehash(artifacts_copy, "preprocessing.json")  # as if shipped on purpose: integrity alone cannot catch it

    for runtime in ("tensorflow", "litert"):
        run = _verify(artifacts_copy, runtime)
        assert run.returncode == 1
        assert "DIFFER from training" in run.stdout
    assert "batch_of_100" in run.stdout and "expected" in run.stdout


# --- custom layers ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="skewless-tests")
class ForgetfulScale(keras.layers.Layer):
    """A custom layer whose get_config() forgets its constructor argument: the classic trap."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return super().get_config()  # overriding turns off Keras' automatic config: 'factor' is lost


@keras.saving.register_keras_serializable(package="skewless-tests")
class CarefulScale(ForgetfulScale):
    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


class UnregisteredScale(CarefulScale):
    pass


def _tiny(layer: keras.layers.Layer) -> tuple[Any, Preprocessor, dict[str, Any]]:
    pre = Preprocessor(
        features=(
            NumericFeature(name="x", op="standardize", mean=1.0, std=2.0),
            CategoricalFeature(name="c", vocabulary=("a", "b")),
        )
    )
    inputs = keras.Input(shape=(pre.output_width,))
    model = keras.Model(inputs, layer(keras.layers.Dense(1, kernel_initializer="ones")(inputs)))
    samples = {"one": {"instances": [{"x": 3.0, "c": "a"}]}, "two": {"instances": [[5, "b"], [0, "a"]]}}
    return model, pre, samples


def test_custom_layer_argument_missing_from_get_config_is_refused_at_export(tmp_path: Path) -> None:
    model, pre, samples = _tiny(ForgetfulScale(factor=3.0))
    with pytest.raises(ExportError, match="get_config"):
        export_model(model, pre, samples, tmp_path / "out", name="m", version="1", custom_object_modules=(THIS_MODULE,))
    assert not (tmp_path / "out").exists(), "a refused export must not leave artifacts behind"


def test_complete_custom_layer_exports_and_round_trips(tmp_path: Path) -> None:
    model, pre, samples = _tiny(CarefulScale(factor=3.0))
    manifest = export_model(
        model, pre, samples, tmp_path / "out", name="m", version="1", custom_object_modules=(THIS_MODULE,)
    )
    assert manifest["custom_objects"] == ["skewless-tests>CarefulScale"]
    golden = json.loads((tmp_path / "out" / "golden.json").read_text())
    # x=3 standardizes to 1.0, plus one-hot a=1: dense(ones) = 2.0, times the factor 3.
    np.testing.assert_allclose(golden["cases"][0]["response"]["predictions"], [[6.0]], rtol=1e-6)


def test_unregistered_custom_layer_is_refused_at_export(tmp_path: Path) -> None:
    model, pre, samples = _tiny(UnregisteredScale(factor=2.0))
    with pytest.raises(ExportError, match="not registered"):
        export_model(model, pre, samples, tmp_path / "out", name="m", version="1", custom_object_modules=(THIS_MODULE,))


def test_custom_layer_outside_the_served_modules_is_refused_at_export(tmp_path: Path) -> None:
    model, pre, samples = _tiny(CarefulScale(factor=2.0))
    with pytest.raises(ExportError, match="handler.custom_objects"):
        export_model(model, pre, samples, tmp_path / "out", name="m", version="1")


def test_served_model_with_an_unregistered_custom_object_is_refused_at_load(artifacts_copy: Path) -> None:
    manifest = json.loads((artifacts_copy / "manifest.json").read_text())
    manifest["custom_objects"].append("skewless>Vanished")
    (artifacts_copy / "manifest.json").write_text(json.dumps(manifest))
    run = _verify(artifacts_copy, "tensorflow")
    assert run.returncode == 1
    assert "skewless>Vanished" in run.stderr and "handler/custom_objects.py" in run.stderr
    assert "Traceback" not in run.stderr


def test_changing_the_custom_layer_argument_changes_the_outputs() -> None:
    """Guards the trap itself: if the argument did not matter, the tests above would prove nothing."""
    from handler.custom_objects import Temperature

    logits = np.array([[2.0]], dtype="float32")
    assert float(Temperature(1.7)(logits)[0, 0]) != pytest.approx(float(Temperature(1.0)(logits)[0, 0]))

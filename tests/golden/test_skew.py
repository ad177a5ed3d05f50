"""The seed's three training/serving skews, each reproduced and shown caught; and hand-written preprocessing.

1. A model trained on globally normalised data ((x - X.mean()) / X.std() over the whole matrix),
   exported with a per-column `Preprocessor.fit`: export refuses, naming the cases.
2. A custom layer whose get_config() forgets a constructor argument: export refuses.
3. float32 training with float64 clients: values with many digits serve exactly what training computes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.core.preprocessing import NumericFeature, Preprocessor
from handler.errors import ExportError
from handler.export import export_model
from handler.settings import Settings
from tests.golden import layers
from tests.golden.conftest import copy_model, rehash, run_handler

COLUMNS = ("visits", "ratio", "spend")


def test_serving_without_the_fitted_preprocessing_is_rejected_by_verify(tmp_path: Path) -> None:
    """A server that re-wrote preprocessing by hand (here: no scaling at all) must not pass."""
    model_dir = copy_model("churn", tmp_path / "churn")
    fitted = Preprocessor.load(model_dir / "preprocessing.json")
    unfitted = Preprocessor(
        features=tuple(
            NumericFeature(name=f.name, op="passthrough") if isinstance(f, NumericFeature) else f
            for f in fitted.features
        )
    )
    unfitted.save(model_dir / "preprocessing.json")
    rehash(model_dir, "preprocessing.json")  # as if shipped on purpose: integrity alone cannot catch it
    for runtime in ("tensorflow", "litert"):
        run = run_handler("verify", "--runtime", runtime, env={"MODEL_DIR": str(model_dir)})
        assert run.returncode == 1, run.stdout + run.stderr
        assert "DIFFER from training" in run.stdout
        assert "batch_of_100" in run.stdout and "expected" in run.stdout


# --- 1. global normalisation fitted per column ------------------------------------------------


def _globally_normalised() -> tuple[Any, np.ndarray, dict[str, Any], dict[str, Any]]:
    """An (untrained) model, its training matrix, sample requests, and what the training pipeline computes."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(50, 10, 300), rng.normal(0.5, 0.1, 300), rng.normal(1000, 300, 300)])
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(3,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(inputs)))

    def training_pipeline(rows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(((rows - x.mean()) / x.std()).astype(np.float32), verbose=0))

    held_out = x[:5] * 1.01
    samples = {
        "one_row": {"instances": [dict(zip(COLUMNS, held_out[0].tolist(), strict=True))]},
        "two_rows": {"instances": [dict(zip(COLUMNS, r.tolist(), strict=True)) for r in held_out[1:3]]},
        "ordered_row": {"instances": [held_out[3].tolist()]},
    }
    expected = {
        "one_row": training_pipeline(held_out[:1]),
        "two_rows": training_pipeline(held_out[1:3]),
        "ordered_row": training_pipeline(held_out[3:4]),
    }
    return model, x, samples, expected


@pytest.mark.slow
def test_a_per_column_preprocessor_for_a_globally_normalised_model_is_refused_with_a_table(tmp_path: Path) -> None:
    model, x, samples, expected = _globally_normalised()
    per_column = Preprocessor.fit(dict(zip(COLUMNS, x.T, strict=True)), {c: "standardize" for c in COLUMNS}, {})
    out = tmp_path / "out"
    with pytest.raises(ExportError) as info:
        export_model(model, per_column, samples, out, name="m", version="1", expected=expected, litert_runtime=False)
    message = info.value.message
    assert message.startswith("3 of 3 sample requests are answered otherwise by the serving path")
    assert "statistics fitted per column where training normalised globally" in message
    table = message.splitlines()
    assert table[1].split()[:2] == ["case", "result"]
    assert {line.split()[0] for line in table if "DIFFERS" in line} == {"one_row", "two_rows", "ordered_row"}
    assert not out.exists(), "a refused export leaves no artifacts behind"


@pytest.mark.slow
def test_the_preprocessor_that_matches_the_training_pipeline_exports_and_serves_it(tmp_path: Path) -> None:
    model, x, samples, expected = _globally_normalised()
    mean, std = float(x.mean()), float(x.std())
    matching = Preprocessor(features=tuple(NumericFeature(c, "standardize", mean=mean, std=std) for c in COLUMNS))
    out = tmp_path / "out"
    export_model(model, matching, samples, out, name="m", version="1", expected=expected, litert_runtime=False)
    golden = json.loads((out / "golden.json").read_text())
    for case in golden["cases"]:
        np.testing.assert_array_equal(case["expected"]["output_0"], expected[case["name"]])
    fresh = np.array([[44.0, 0.61, 1234.5]])
    served = open_service(Settings(model_dir=out), runtime="tensorflow").predict_v1(
        {"instances": [dict(zip(COLUMNS, fresh[0].tolist(), strict=True))]}
    )
    want = model.predict(((fresh - x.mean()) / x.std()).astype(np.float32), verbose=0)
    np.testing.assert_allclose(served["predictions"], want, rtol=1e-5, atol=1e-6)


# --- 2. a custom layer whose get_config() forgets an argument -----------------------------------


def _scaled(layer: keras.layers.Layer) -> Any:
    inputs = keras.Input(shape=(3,), name="x")
    return keras.Model(inputs, layer(keras.layers.Dense(1, kernel_initializer="ones")(inputs)))


SAMPLES = {"one": {"instances": [[1.0, 2.0, 3.0]]}, "two": {"instances": [[0.5, 0.5, 0.5], [-1.0, 0.0, 4.0]]}}


@pytest.mark.slow
def test_a_custom_layer_argument_missing_from_get_config_is_refused_at_export(tmp_path: Path) -> None:
    model = _scaled(layers.ForgetfulScale(factor=3.0))
    with pytest.raises(ExportError) as info:
        export_model(
            model, None, SAMPLES, tmp_path / "out", name="m", version="1", custom_object_modules=(layers.MODULE,)
        )
    assert "get_config() probably misses a constructor argument" in info.value.message
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_complete_custom_layer_exports_with_the_training_answers(tmp_path: Path) -> None:
    model = _scaled(layers.CarefulScale(factor=3.0))
    manifest = export_model(
        model, None, SAMPLES, tmp_path / "out", name="m", version="1", custom_object_modules=(layers.MODULE,)
    )
    assert manifest["custom_objects"] == ["skewless-tests>CarefulScale"]
    assert manifest["custom_object_modules"] == ["tests.golden.layers"]
    golden = json.loads((tmp_path / "out" / "golden.json").read_text())
    # Dense(ones) sums the row; the layer multiplies by 3: 1+2+3 -> 18; 1.5 -> 4.5; 3 -> 9.
    assert [c["expected"]["output_0"] for c in golden["cases"]] == [[[18.0]], [[4.5], [9.0]]]


def test_changing_the_custom_layer_argument_changes_the_outputs() -> None:
    """Guards the trap itself: if the argument did not matter, the test above would prove nothing."""
    from handler.custom_objects import Temperature

    logits = np.array([[2.0]], dtype="float32")
    assert float(Temperature(1.7)(logits)[0, 0]) != pytest.approx(float(Temperature(1.0)(logits)[0, 0]))


# --- 3. float32 training, float64 clients -----------------------------------------------------

LONG_DIGITS = [
    [0.12345678901234568, 0.9876543210987654, -0.009876543210987654, 1 / 3],
    [2 / 3, -0.7000000000000001, 1e-7 + 1e-15, -0.31415926535897931],
]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_float64_values_with_many_digits_serve_what_the_float32_model_computes(tmp_path: Path, runtime: str) -> None:
    keras.utils.set_random_seed(2)
    inputs = keras.Input(shape=(4,), name="x")
    model = keras.Model(
        inputs, keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(0, 100))(inputs)
    )
    export_model(model, None, {"digits": {"instances": LONG_DIGITS}}, tmp_path / "out", name="m", version="1")
    training = model.predict(np.array(LONG_DIGITS, dtype=np.float32), verbose=0)
    rounded = model.predict(np.array(LONG_DIGITS, dtype=np.float32).round(5), verbose=0)
    assert np.abs(training - rounded).max() > 1e-4, "the digits past the fifth must matter, or this proves nothing"

    served = open_service(Settings(model_dir=tmp_path / "out"), runtime=runtime).predict_v1({"instances": LONG_DIGITS})
    got = np.asarray(served["predictions"], dtype=np.float32)
    if runtime == "tensorflow":
        np.testing.assert_array_equal(got, training)
    else:
        np.testing.assert_allclose(got, training, rtol=1e-6, atol=3e-5)

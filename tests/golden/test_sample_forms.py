"""The export reads sample requests as the server does: what the server takes exports, what it refuses is named.

The reference reading (`model.predict` on the request in Keras' structure) and the serving path must
agree on which requests they take. References: `model.predict` on arrays built here.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from handler.export import export_model

pytestmark = pytest.mark.slow


def _two_scalars() -> keras.Model:
    keras.utils.set_random_seed(12)
    inputs = {name: keras.Input(shape=(), name=name) for name in ("age", "visits")}
    features = keras.ops.stack([inputs["age"], inputs["visits"]], axis=1)
    return keras.Model(inputs, keras.layers.Dense(1)(features))


def test_ordered_rows_and_columns_of_scalar_inputs_export_as_the_server_takes_them(tmp_path: Path) -> None:
    model = _two_scalars()
    samples = {
        "ordered_rows": {"instances": [[42.0, 3.0], [70.0, 12.0]]},
        "one_ordered_example": {"inputs": [30.0, 1.0]},
        "ordered_columns": {"inputs": [[42.0, 3.0], [70.0, 12.0]]},
    }
    export_model(model, None, samples, tmp_path / "out", name="m", version="1", litert_runtime=False)
    golden = {c["name"]: c for c in json.loads((tmp_path / "out" / "golden.json").read_text())["cases"]}

    def predict(age: list[float], visits: list[float]) -> np.ndarray:
        return np.asarray(model.predict({"age": np.array(age), "visits": np.array(visits)}, verbose=0))

    np.testing.assert_allclose(golden["ordered_rows"]["expected"]["output_0"], predict([42.0, 70.0], [3.0, 12.0]))
    np.testing.assert_allclose(golden["ordered_columns"]["expected"]["output_0"], predict([42.0, 70.0], [3.0, 12.0]))
    np.testing.assert_allclose(golden["one_ordered_example"]["expected"]["output_0"], predict([30.0], [1.0]))
    assert golden["one_ordered_example"]["batched"] is False


def test_a_shape_one_input_takes_bare_samples_and_training_data_of_one_value_per_row(tmp_path: Path) -> None:
    keras.utils.set_random_seed(13)
    age = keras.Input(shape=(1,), name="age")
    model = keras.Model(age, keras.layers.Dense(2)(age))
    ages = np.array([31.0, 45.0, 58.0, 77.0], dtype=np.float32)
    samples = {"bare": {"instances": [np.float32(31.0), 45.0]}, "one_bare": {"inputs": 58.0}}
    manifest = export_model(model, None, samples, tmp_path / "out", name="m", version="1", training_data={"age": ages})
    assert manifest["runtimes"]["litert"]["golden_passed"] is True
    golden = {c["name"]: c for c in json.loads((tmp_path / "out" / "golden.json").read_text())["cases"]}
    want = model.predict(ages.reshape(-1, 1), verbose=0)
    np.testing.assert_allclose(golden["bare"]["expected"]["output_0"], want[:2], rtol=1e-6)
    np.testing.assert_allclose(golden["one_bare"]["expected"]["output_0"], want[2:3], rtol=1e-6)
    baseline = json.loads((tmp_path / "out" / "baseline.json").read_text())
    assert baseline["rows"] == 4

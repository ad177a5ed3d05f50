"""Keras' FeatureSpace tutorial model as the tutorial writes its requests: a scalar per feature.

Its inputs are `Input(shape=(1,))`; the tutorial sends `{"age": 54, "thal": "fixed", ...}`, and
calls `model.predict` on tensors of shape [n] before anything is exported. Sample requests of every
form (scalar rows, rows of arrays of one, columns with and without the batch axis) export together
and are served on every path; ambiguous requests stay 422s; export errors blame what is wrong.
References: `model.predict` on tensors built here, reasons written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.app import Function
from handler.errors import ExportError
from handler.export import export_model
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support.http_events import body_of, http_event

pytestmark = pytest.mark.slow

N = 200
DTYPES = {"sex": "int32", "cp": "int32", "thal": "string", "age": "float32", "chol": "float32"}


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "sex": rng.integers(0, 2, N).astype("int64"),
        "cp": rng.integers(1, 5, N).astype("int64"),
        "thal": rng.choice(["fixed", "normal", "reversible"], N).astype(object),
        "age": rng.normal(54, 9, N).astype("float32"),
        "chol": rng.normal(246, 50, N).astype("float32"),
    }


def _scalar_row(data: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """One patient as the tutorial sends it: a bare value per feature."""
    return {name: col[i].item() if name != "thal" else str(col[i]) for name, col in data.items()}


def _boxed_row(data: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {name: [value] for name, value in _scalar_row(data, i).items()}


def _predict(model: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    """model.predict on tensors of the Inputs' own shape [n, 1], built from the rows' values."""
    import tensorflow as tf

    return np.asarray(
        model.predict({k: tf.constant([[r[k]] for r in rows], dtype=d) for k, d in DTYPES.items()}, verbose=0)
    )


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, np.ndarray], Path]:
    import tensorflow as tf
    from keras.utils import FeatureSpace

    keras.utils.set_random_seed(3)
    data = _data()
    space = FeatureSpace(
        features={
            "sex": FeatureSpace.integer_categorical(num_oov_indices=0),
            "cp": FeatureSpace.integer_categorical(num_oov_indices=0),
            "thal": FeatureSpace.string_categorical(num_oov_indices=0),
            "age": FeatureSpace.float_discretized(num_bins=8),
            "chol": FeatureSpace.float_normalized(),
        },
        output_mode="concat",
    )
    space.adapt(tf.data.Dataset.from_tensor_slices(data).batch(32))
    inputs = space.get_inputs()
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(space.get_encoded_features()))
    model.compile("adam", "binary_crossentropy")
    model.fit(tf.data.Dataset.from_tensor_slices((data, (data["cp"] > 2).astype("int64"))).batch(32), verbose=0)
    # As the tutorial does: one patient, each feature a tensor of shape [1] (a batch of bare values).
    model.predict({k: tf.convert_to_tensor([v]) for k, v in _scalar_row(data, 0).items()}, verbose=0)
    samples = {
        "scalar_row": {"instances": [_scalar_row(data, 0)]},
        "boxed_rows": {"instances": [_boxed_row(data, 1), _boxed_row(data, 2)]},
        "mixed_rows": {"instances": [_scalar_row(data, 3), _boxed_row(data, 4)]},
        "columns": {"inputs": {k: [v, _boxed_row(data, 6)[k]] for k, v in _boxed_row(data, 5).items()}},
        "one_example_of_scalars": {"inputs": _scalar_row(data, 7)},
    }
    out = tmp_path_factory.mktemp("tutorial") / "heart"
    export_model(model, None, samples, out, name="heart", version="1", litert_runtime=False)
    return model, data, out


def _post(function: Function, path: str, body: Any) -> tuple[int, Any]:
    response = function.handler()(http_event("http", "POST", path, body), LambdaContext())
    return response["statusCode"], body_of(response)


def test_every_sample_form_exports_and_the_golden_answers_are_model_predict(
    tutorial: tuple[Any, dict[str, np.ndarray], Path],
) -> None:
    model, data, folder = tutorial
    golden = {c["name"]: c for c in json.loads((folder / "golden.json").read_text())["cases"]}
    rows = {
        "scalar_row": [0],
        "boxed_rows": [1, 2],
        "mixed_rows": [3, 4],
        "columns": [5, 6],
        "one_example_of_scalars": [7],
    }
    for case, at in rows.items():
        want = _predict(model, [_scalar_row(data, i) for i in at])
        np.testing.assert_allclose(golden[case]["expected"]["output_0"], want, rtol=1e-6, err_msg=case)
    assert golden["one_example_of_scalars"]["batched"] is False and golden["columns"]["batched"] is True


def test_a_scalar_per_feature_is_served_on_v1_rows_and_columns_and_oip(
    tutorial: tuple[Any, dict[str, np.ndarray], Path],
) -> None:
    model, data, folder = tutorial
    function = Function(Settings(model_dir=folder))
    rows = [_scalar_row(data, i) for i in range(10, 13)]
    want = _predict(model, rows)

    status, body = _post(function, "/v1/models/heart:predict", {"instances": rows})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], want, rtol=1e-5, atol=1e-6)

    status, body = _post(function, "/v1/models/heart:predict", {"inputs": rows[0]})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"], want[0], rtol=1e-5, atol=1e-6)  # one example: no batch axis

    oip = {"age": "FP32", "chol": "FP32", "sex": "INT32", "cp": "INT32", "thal": "BYTES"}
    tensors = [{"name": k, "datatype": t, "shape": [3], "data": [r[k] for r in rows]} for k, t in oip.items()]
    status, body = _post(function, "/v2/models/heart/infer", {"inputs": tensors})
    assert status == 200, body
    (output,) = body["outputs"]
    assert output["shape"] == [3, 1]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 1)), want, rtol=1e-5, atol=1e-6)


def test_requests_no_reading_can_serve_are_422s_naming_feature_and_reason(
    tutorial: tuple[Any, dict[str, np.ndarray], Path],
) -> None:
    _, data, folder = tutorial
    function = Function(Settings(model_dir=folder))
    two = {**_scalar_row(data, 0), "age": [50.0, 60.0]}
    status, body = _post(function, "/v1/models/heart:predict", {"instances": [_scalar_row(data, 1), two]})
    assert status == 422, body
    assert body["details"] == [
        {
            "instance": 1,
            "feature": "age",
            "reason": "has 2 values but takes one per example: send it bare or in an array of one",
        }
    ]
    # Columns of two bare values each: two patients, or one patient of two values per feature? Nothing says.
    columns = {k: [v, _scalar_row(data, 2)[k]] for k, v in _scalar_row(data, 1).items()}
    status, body = _post(function, "/v1/models/heart:predict", {"inputs": columns})
    assert status == 422, body
    assert [d["feature"] for d in body["details"]] == sorted(DTYPES)
    assert all(
        d["instance"] is None and "no input of the request tells one example from a batch" in d["reason"]
        for d in body["details"]
    ), body


def test_a_sample_the_server_refuses_is_named_so_at_export_without_a_word_of_a_preprocessor(
    tutorial: tuple[Any, dict[str, np.ndarray], Path], tmp_path: Path
) -> None:
    model, data, _ = tutorial
    samples = {"good": {"instances": [_scalar_row(data, 0)]}, "bad": {"instances": [{**_scalar_row(data, 1), "cp": 9}]}}
    with pytest.raises(ExportError) as info:
        export_model(model, None, samples, tmp_path / "out", name="heart", version="1", litert_runtime=False)
    message = info.value.message
    assert message.startswith("sample request 'bad' is refused by the serving path, as a client's would be: ")
    assert "instance 0, feature 'cp': is not a value this input knows; expected one of 1, 2, 3, 4" in message
    assert "preprocess" not in message

    expected = {"good": _predict(model, [_scalar_row(data, 0)]), "bad": _predict(model, [_scalar_row(data, 1)])}
    with pytest.raises(ExportError) as info:  # with `expected`, the serving path's replay is what refuses it
        export_model(
            model, None, samples, tmp_path / "out", name="heart", version="1", expected=expected, litert_runtime=False
        )
    message = info.value.message
    assert message.startswith("1 of 2 sample requests are answered otherwise by the serving path"), message
    assert "the serving path refuses bad as it would a client's request" in message
    assert "preprocess" not in message
    assert not (tmp_path / "out").exists()


def test_wrong_expected_answers_without_a_preprocessor_blame_expected(
    tutorial: tuple[Any, dict[str, np.ndarray], Path], tmp_path: Path
) -> None:
    model, data, _ = tutorial
    samples = {"one": {"instances": [_scalar_row(data, 0)]}}
    wrong = {"one": _predict(model, [_scalar_row(data, 0)]) + 0.1}
    with pytest.raises(ExportError) as info:
        export_model(
            model, None, samples, tmp_path / "out", name="heart", version="1", expected=wrong, litert_runtime=False
        )
    message = info.value.message
    assert "the answers differ from `expected`" in message and "preprocess" not in message, message

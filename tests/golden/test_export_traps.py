"""Export traps from issue 10, each reproduced with a small model exported into tmp_path, and shown refused or right.

References are the Keras model itself (`model.predict` on arrays built here) or values written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.core.artifacts import Artifacts
from handler.core.model import choose_runtime
from handler.core.preprocessing import NumericFeature, Preprocessor
from handler.errors import ExportError, ModelLoadError
from handler.export import export_model
from handler.settings import Settings

pytestmark = pytest.mark.slow


def _dense(n_in: int = 3, seed: int = 0) -> Any:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(n_in,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


# --- a. list outputs --------------------------------------------------------------------------


def test_list_outputs_give_one_prediction_object_per_instance_on_both_runtimes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(3,), name="x")
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(1)(hidden), keras.layers.Dense(2)(hidden)])
    rows = [[0.5, -1.0, 2.0], [1.0, 2.0, 3.0], [-0.25, 0.0, 0.75]]
    samples = {"one": {"instances": rows[:1]}, "three": {"instances": rows}, "columns": {"inputs": rows[1:]}}
    manifest = export_model(model, None, samples, tmp_path / "out", name="two_heads", version="1")
    assert [o["name"] for o in manifest["signature"]["outputs"]] == ["output_0", "output_1"]
    assert manifest["runtimes"]["litert"]["golden_passed"] is True

    want0, want1 = model.predict(np.array(rows, dtype=np.float32), verbose=0)
    golden = {c["name"]: c for c in json.loads((tmp_path / "out" / "golden.json").read_text())["cases"]}
    np.testing.assert_allclose(golden["three"]["expected"]["output_0"], want0, rtol=1e-6)
    np.testing.assert_allclose(golden["three"]["expected"]["output_1"], want1, rtol=1e-6)

    for runtime in ("tensorflow", "litert"):
        service = open_service(Settings(model_dir=tmp_path / "out"), runtime=runtime)
        one = service.predict_v1({"instances": rows[:1]})
        assert list(one) == ["predictions"] and len(one["predictions"]) == 1, one  # never "two predictions"
        assert sorted(one["predictions"][0]) == ["output_0", "output_1"]
        three = service.predict_v1({"instances": rows})["predictions"]
        assert len(three) == 3
        for i, entry in enumerate(three):
            np.testing.assert_allclose(entry["output_0"], want0[i], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(entry["output_1"], want1[i], rtol=1e-5, atol=1e-6)
        columns = service.predict_v1({"inputs": rows[1:]})["outputs"]
        np.testing.assert_allclose(columns["output_0"], want0[1:], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(columns["output_1"], want1[1:], rtol=1e-5, atol=1e-6)


# --- e. what export takes and what it refuses -------------------------------------------------


def test_a_preprocessor_without_expected_is_refused(tmp_path: Path) -> None:
    pre = Preprocessor(features=(NumericFeature("a"), NumericFeature("b"), NumericFeature("c")))
    with pytest.raises(ExportError) as info:
        export_model(_dense(), pre, {"one": {"instances": [[1, 2, 3]]}}, tmp_path / "out", name="m", version="1")
    assert info.value.message.startswith("a numpy preprocessor needs `expected`")
    assert "what your training pipeline computed" in info.value.message
    assert not (tmp_path / "out").exists()


def test_numpy_scalars_and_arrays_in_sample_requests_are_accepted(tmp_path: Path) -> None:
    model = _dense()
    samples = {
        "array_rows": {"instances": np.array([[1.5, 2.5, 3.5], [0.0, -1.0, 1.0]], dtype=np.float32)},
        "scalars": {"instances": [[np.float64(0.5), np.int64(2), np.float32(1.25)]]},
        "named": {"instances": [{"x": np.arange(3.0)}]},
    }
    export_model(model, None, samples, tmp_path / "out", name="m", version="1", litert_runtime=False)
    cases = {c["name"]: c for c in json.loads((tmp_path / "out" / "golden.json").read_text())["cases"]}
    # Written as a client sends them: plain JSON numbers.
    assert cases["array_rows"]["request"] == {"instances": [[1.5, 2.5, 3.5], [0.0, -1.0, 1.0]]}
    assert cases["scalars"]["request"] == {"instances": [[0.5, 2, 1.25]]}
    assert cases["named"]["request"] == {"instances": [{"x": [0.0, 1.0, 2.0]}]}
    for name, x in {"array_rows": [[1.5, 2.5, 3.5], [0.0, -1.0, 1.0]], "scalars": [[0.5, 2, 1.25]]}.items():
        want = model.predict(np.array(x, dtype=np.float32), verbose=0)
        np.testing.assert_allclose(cases[name]["expected"]["output_0"], want, rtol=1e-6)


def test_a_sample_request_the_model_cannot_take_names_the_case_and_what_the_server_needs(tmp_path: Path) -> None:
    samples = {"fine": {"instances": [[1.0, 2.0, 3.0]]}, "short_row": {"instances": [[1.0, 2.0]]}}
    with pytest.raises(ExportError) as info:
        export_model(_dense(), None, samples, tmp_path / "out", name="m", version="1", litert_runtime=False)
    message = info.value.message
    assert message.startswith("sample request 'short_row' is refused by the serving path, as a client's would be: ")
    assert "instance 0, feature 'x': has 2 entries on axis 1, expected 3; " in message, message
    assert message.endswith("the server needs, per example, 'x': float32 [3]")
    assert "Traceback" not in message and "\n" not in message


@pytest.mark.filterwarnings("ignore:When providing `inputs` as a dict:UserWarning")  # again when export reloads it
def test_a_dict_input_whose_key_is_not_the_input_name_is_refused(tmp_path: Path) -> None:
    tensor = keras.Input(shape=(2,), name="amount")
    with pytest.warns(UserWarning, match="must match the names"):  # Keras only warns
        model = keras.Model({"price": tensor}, keras.layers.Dense(1)(tensor))
    with pytest.raises(ExportError) as info:
        export_model(
            model, None, {"one": {"instances": [{"price": [1.0, 2.0]}]}}, tmp_path / "out", name="m", version="1"
        )
    assert info.value.message.startswith("the model's dict input 'price' is a keras.Input named 'amount'")
    assert "keras.Input(..., name='price')" in info.value.message


def test_a_multi_input_sample_row_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    a, b = keras.Input(shape=(2,), name="a"), keras.Input(shape=(1,), name="b")
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ExportError, match=r"'list_row' is refused by the serving path.*instance 0: must be an object"):
        export_model(
            model, None, {"list_row": {"instances": [[[1.0, 2.0], [3.0]]]}}, tmp_path / "o", name="m", version="1"
        )


# --- f. LiteRT cannot convert a recurrent layer over a dynamic batch ----------------------------


def test_a_non_unrolled_lstm_records_why_litert_failed_and_auto_serves_tensorflow(tmp_path: Path) -> None:
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(5, 2), name="seq")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(4)(inputs)))
    x = np.random.default_rng(4).normal(size=(3, 5, 2)).astype(np.float32)
    samples = {"three": {"instances": x.tolist()}, "one_no_batch_axis": {"inputs": x[0].tolist()}}
    out = tmp_path / "out"
    manifest = export_model(model, None, samples, out, name="lstm", version="1")

    litert = manifest["runtimes"]["litert"]
    assert litert["golden_passed"] is False
    reason = litert["reason"]
    assert reason.startswith("conversion failed: ")
    root = reason.removeprefix("conversion failed: ").split(" | ")[0]
    assert "TensorList" in root, f"the root cause should come first: {reason}"
    assert "loc(" not in reason and "unroll=True" in reason
    assert json.loads((out / "manifest.json").read_text())["runtimes"]["litert"] == litert
    assert not (out / "model.tflite").exists() and "model.tflite" not in manifest["files"]

    runtime, why = choose_runtime(Artifacts.open(out), "auto")
    assert runtime == "tensorflow" and why.startswith("auto: LiteRT cannot serve this model (conversion failed")
    service = open_service(Settings(model_dir=out))  # SERVING_RUNTIME=auto
    assert service.runtime == "tensorflow"
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(service.predict_v1({"instances": x.tolist()})["predictions"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(service.predict_v1({"inputs": x[0].tolist()})["outputs"], want[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelLoadError, match="SERVING_RUNTIME=litert, but LiteRT cannot serve this model"):
        open_service(Settings(model_dir=out), runtime="litert")

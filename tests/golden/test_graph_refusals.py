"""A client's mistake that would fail inside the model graph is a 422 naming the instance, never a 500.

What can be checked before the graph is checked there, from what the export recorded: the vocabulary of
a lookup without an OOV index (Keras' own FeatureSpace tutorial model, `*_categorical(num_oov_indices=0)`),
and a sequence with no steps for a variable-length input. Whatever still escapes is a 500, counted by the
`InternalErrors` metric. References: `model.predict` on arrays built here, and statuses written by hand.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.app import Function
from handler.export import export_model
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support.http_events import body_of, http_event

pytestmark = pytest.mark.slow

N = 240
CATEGORIES = ("fixed", "normal", "reversible")


def _heart_data() -> dict[str, np.ndarray]:
    """Columns like the tutorial's heart-disease data: int and string categories, and two numbers."""
    rng = np.random.default_rng(7)
    return {
        "sex": rng.integers(0, 2, N).astype("int64"),
        "cp": rng.integers(1, 5, N).astype("int64"),  # ids 1..4: a 0 is no known value
        "thal": rng.choice(CATEGORIES, N).astype(object),
        "age": rng.normal(54, 9, N).astype("float32"),
        "chol": rng.normal(246, 50, N).astype("float32"),
    }


def _row(data: dict[str, np.ndarray], i: int) -> dict[str, list[Any]]:
    """One request row, each feature as the model's Input(shape=(1,)) takes it."""
    return {
        "sex": [int(data["sex"][i])],
        "cp": [int(data["cp"][i])],
        "thal": [str(data["thal"][i])],
        "age": [float(data["age"][i])],
        "chol": [float(data["chol"][i])],
    }


@pytest.fixture(scope="module")
def feature_space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, dict[str, np.ndarray]]:
    """The structured-data tutorial's inference model (FeatureSpace inside), exported: (model, folder, data)."""
    import tensorflow as tf
    from keras.utils import FeatureSpace

    keras.utils.set_random_seed(11)
    data = _heart_data()
    labels = (data["cp"] > 2).astype("int64")
    space = FeatureSpace(
        features={
            "sex": FeatureSpace.integer_categorical(num_oov_indices=0),
            "cp": FeatureSpace.integer_categorical(num_oov_indices=0),
            "thal": FeatureSpace.string_categorical(num_oov_indices=0),
            "age": FeatureSpace.float_discretized(num_bins=8),
            "chol": FeatureSpace.float_normalized(),
        },
        crosses=[FeatureSpace.cross(feature_names=("sex", "age"), crossing_dim=32)],
        output_mode="concat",
    )
    space.adapt(tf.data.Dataset.from_tensor_slices(data).batch(32))
    inputs = space.get_inputs()
    encoded = space.get_encoded_features()
    hidden = keras.layers.Dense(8, activation="relu")(encoded)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile("adam", "binary_crossentropy")
    model.fit(tf.data.Dataset.from_tensor_slices((data, labels)).batch(32), verbose=0)
    samples = {
        "one_patient": {"instances": [_row(data, 0)]},
        "three_patients": {"instances": [_row(data, i) for i in (1, 2, 3)]},
    }
    out = tmp_path_factory.mktemp("heart") / "heart"
    export_model(model, None, samples, out, name="heart", version="1", litert_runtime=False)
    return model, out, data


def _post(function: Function, body: Any) -> tuple[int, Any]:
    response = function.handler()(http_event("http", "POST", "/predict", body), LambdaContext())
    return response["statusCode"], body_of(response)


def test_feature_space_tutorial_model_exports_and_serves_training_answers(
    feature_space: tuple[Any, Path, dict[str, np.ndarray]],
) -> None:
    model, folder, data = feature_space
    manifest = json.loads((folder / "manifest.json").read_text())
    features = {f["name"]: f for f in manifest["signature"]["features"]}
    # What the lookups know, recorded at export (written by hand from _heart_data: ids 1..4, 0..1, 3 words).
    assert features["cp"]["vocabulary"] == [1, 2, 3, 4], features["cp"]
    assert features["sex"]["vocabulary"] == [0, 1], features["sex"]
    assert features["thal"]["vocabulary"] == sorted(CATEGORIES), features["thal"]
    rows = [_row(data, i) for i in range(5, 9)]
    status, body = _post(Function(Settings(model_dir=folder)), {"instances": rows})
    assert status == 200, body
    import tensorflow as tf

    dtypes = {"sex": tf.int32, "cp": tf.int32, "thal": tf.string, "age": tf.float32, "chol": tf.float32}
    want = model.predict({k: tf.constant([r[k] for r in rows], dtype=d) for k, d in dtypes.items()}, verbose=0)
    np.testing.assert_allclose(np.array(body["predictions"]), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("feature", "value", "reason"),
    [
        ("cp", [7], "[0] is not a value this input knows; expected one of 1, 2, 3, 4"),
        ("cp", [0], "[0] is not a value this input knows; expected one of 1, 2, 3, 4"),
        ("thal", ["unknown"], "[0] is not a known category; expected one of fixed, normal, reversible"),
        ("thal", [{"b64": "dW5rbm93bg=="}], "[0] is not a known category; expected one of fixed, normal, reversible"),
    ],
)
def test_a_value_a_lookup_without_oov_does_not_know_is_a_422_naming_it(
    feature_space: tuple[Any, Path, dict[str, np.ndarray]], feature: str, value: Any, reason: str
) -> None:
    _, folder, data = feature_space
    rows = [_row(data, 0), {**_row(data, 1), feature: value}]
    status, body = _post(Function(Settings(model_dir=folder)), {"instances": rows})
    assert status == 422, body
    assert body["details"] == [{"instance": 1, "feature": feature, "reason": reason}], body


def test_a_known_category_as_b64_answers_as_its_text(feature_space: tuple[Any, Path, dict[str, np.ndarray]]) -> None:
    _, folder, data = feature_space
    function = Function(Settings(model_dir=folder))
    row = _row(data, 4)
    as_b64 = {**row, "thal": [{"b64": base64.b64encode(row["thal"][0].encode()).decode()}]}
    assert _post(function, {"instances": [row]}) == _post(function, {"instances": [as_b64]})


@pytest.fixture(scope="module")
def sequences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A variable-length GRU over ids, with dict outputs, exported."""
    keras.utils.set_random_seed(5)
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    hidden = keras.layers.GRU(4)(keras.layers.Embedding(20, 4)(ids))
    model = keras.Model(
        ids, {"score": keras.layers.Dense(1)(hidden), "kind": keras.layers.Dense(3, activation="softmax")(hidden)}
    )
    samples = {"five_steps": {"instances": [[1, 2, 3, 4, 5]]}, "two_of_three": {"instances": [[3, 1, 9], [7, 7, 2]]}}
    out = tmp_path_factory.mktemp("gru") / "gru"
    export_model(model, None, samples, out, name="gru", version="1", litert_runtime=False)
    return out


@pytest.mark.parametrize(
    ("instances", "details"),
    [
        (
            [[]],
            [
                {
                    "instance": 0,
                    "feature": "ids",
                    "reason": "has no entries on axis 1: a sequence needs at least one value",
                }
            ],
        ),
        (
            [[1, 2], []],
            [
                {
                    "instance": 1,
                    "feature": "ids",
                    "reason": "has no entries on axis 1: a sequence needs at least one value",
                }
            ],
        ),
    ],
)
def test_an_empty_sequence_is_a_422_naming_the_instance(sequences: Path, instances: Any, details: Any) -> None:
    status, body = _post(Function(Settings(model_dir=sequences)), {"instances": instances})
    assert status == 422, body
    assert body["details"] == details, body


def test_a_graph_error_no_check_catches_is_a_500_counted_by_a_metric(
    sequences: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    function = Function(Settings(model_dir=sequences))
    assert function.service is not None
    function.service.forward()  # loaded, then broken the way an unforeseen graph error would be

    def failing(inputs: Any) -> Any:
        raise ValueError("an op failed on these values")

    function.service.model._forward = failing
    capsys.readouterr()
    status, body = _post(function, {"instances": [[1, 2, 3]]})
    assert status == 500 and body["code"] == "internal_error", body
    counted = [
        json.loads(line)["InternalErrors"]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"') and "InternalErrors" in line
    ]
    assert counted == [[1.0]] or counted == [1.0], counted

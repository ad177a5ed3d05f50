"""TF Serving's `:classify` for a classifier exported with class names: every score named, per example.

Two small Keras classifiers are trained here (a softmax over three classes on two named inputs, and a
single sigmoid score), exported with `class_names`, and served; the reference is `model.predict` on the
same inputs built as Keras takes them, and the answer's shape is TF Serving's documented classify result
(`{"result": [[[label, score], ...], ...]}`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.app import Function
from handler.export import ExportError, export_model
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support.http_events import body_of, http_event
from tests.triggers.http.test_http_errors import error

FLOWERS = ["setosa", "versicolor", "virginica"]


def _softmax() -> keras.Model:
    size = keras.Input((2,), name="size")
    colour = keras.Input((), name="colour", dtype="int32")
    x = keras.layers.Concatenate()([size, keras.layers.Embedding(4, 2)(colour)])
    model = keras.Model({"size": size, "colour": colour}, keras.layers.Dense(3, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit({"size": rng.normal(size=(64, 2)), "colour": rng.integers(0, 4, 64)}, rng.integers(0, 3, 64), verbose=0)
    return model


def _sigmoid() -> keras.Model:
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(x))


def _serve(model: keras.Model, request: dict[str, Any], out: Path, names: list[str]) -> Function:
    export_model(model, None, {"one": request}, out, name="clf", version="1", class_names=names, litert_runtime=False)
    function = Function(Settings(model_dir=out, serving_runtime="tensorflow"))
    assert function.service is not None, function.startup_error
    return function


def _classify(function: Function, body: dict[str, Any]) -> dict[str, Any]:
    return function.handler()(http_event("http", "POST", "/v1/models/clf:classify", body), LambdaContext())


def test_softmax_scores_are_named_by_class_in_order(tmp_path: Path) -> None:
    model = _softmax()
    examples = [{"size": [0.5, -1.0], "colour": 3}, {"size": [2.0, 0.1], "colour": 0}]
    function = _serve(model, {"instances": examples[:1]}, tmp_path / "clf", FLOWERS)
    answer = _classify(function, {"signature_name": "serving_default", "examples": examples})
    assert answer["statusCode"] == 200, answer["body"]
    result = body_of(answer)["result"]
    reference = model.predict({"size": np.array([[0.5, -1.0], [2.0, 0.1]]), "colour": np.array([3, 0])}, verbose=0)
    assert [[label for label, _ in example] for example in result] == [FLOWERS, FLOWERS]
    np.testing.assert_allclose([[score for _, score in example] for example in result], reference, rtol=1e-5, atol=1e-6)


def test_context_is_shared_by_every_example(tmp_path: Path) -> None:
    model = _softmax()
    function = _serve(model, {"instances": [{"size": [0.0, 0.0], "colour": 1}]}, tmp_path / "clf", FLOWERS)
    answer = _classify(function, {"context": {"colour": 2}, "examples": [{"size": [1.0, 1.0]}, {"size": [-1.0, 0.5]}]})
    assert answer["statusCode"] == 200, answer["body"]
    reference = model.predict({"size": np.array([[1.0, 1.0], [-1.0, 0.5]]), "colour": np.array([2, 2])}, verbose=0)
    scores = [[score for _, score in example] for example in body_of(answer)["result"]]
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-6)


def test_a_single_sigmoid_score_is_negative_then_positive(tmp_path: Path) -> None:
    model = _sigmoid()
    function = _serve(model, {"instances": [[0.1, 0.2, 0.3]]}, tmp_path / "clf", ["stays", "churns"])
    answer = _classify(function, {"examples": [{"x": [1.0, -2.0, 0.5]}]})
    assert answer["statusCode"] == 200, answer["body"]
    p = float(model.predict(np.array([[1.0, -2.0, 0.5]]), verbose=0)[0, 0])
    ((stays, p_stays), (churns, p_churns)) = body_of(answer)["result"][0]
    assert (stays, churns) == ("stays", "churns")
    assert p_churns == pytest.approx(p, rel=1e-5) and p_stays == pytest.approx(1 - p, rel=1e-5)


def test_a_bad_example_is_a_422_naming_it_and_a_body_without_examples_a_400(tmp_path: Path) -> None:
    function = _serve(_softmax(), {"instances": [{"size": [0.0, 0.0], "colour": 1}]}, tmp_path / "clf", FLOWERS)
    body = error(_classify(function, {"examples": [{"size": [1.0, 1.0], "colour": 9}]}), 422, "invalid_input")
    assert [(d["instance"], d["feature"]) for d in body["details"]] == [(0, "colour")]  # Embedding(4): ids 0..3
    error(_classify(function, {"instances": [{"size": [1.0, 1.0], "colour": 1}]}), 400, "bad_request")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "b"], "class_names has 2 names but output 'output_0'"),
        (["a", "a", "b"], "distinct, non-empty strings"),
        ("abc", "distinct, non-empty strings"),
    ],
)
def test_class_names_that_do_not_fit_the_output_are_refused_at_export(tmp_path: Path, names: Any, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_model(
            _softmax(),
            None,
            {"one": {"instances": [{"size": [0.0, 0.0], "colour": 1}]}},
            tmp_path / "clf",
            name="clf",
            version="1",
            class_names=names,
            litert_runtime=False,
        )
    assert not (tmp_path / "clf").exists()

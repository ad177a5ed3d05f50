"""A regression trained on a standardized target answers in training's units: house prices in dollars.

The model learns prices scaled to mean 0 and standard deviation 1; the preprocessor records the
scaling (`TargetScaling`), and the server un-scales after the model, on every trigger and runtime.
References: `model.predict` on the inputs as training builds them (`pre.transform`), un-scaled here
by hand with the training prices' own mean and standard deviation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.app import Function
from handler.core.preprocessing import Preprocessor, TargetScaling
from handler.errors import ExportError
from handler.export import export_model
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support.http_events import body_of, http_event

pytestmark = pytest.mark.slow

N = 400
CITIES = ("austin", "boston", "denver")
NEW_HOUSES = [
    {"sqft": 950.0, "rooms": 2.0, "city": "denver"},
    {"sqft": 2400.0, "rooms": 4.0, "city": "boston"},
    {"sqft": 3600.0, "rooms": 6.0, "city": "austin"},
]


@dataclass(frozen=True)
class House:
    model: Any
    pre: Preprocessor
    folder: Path
    columns: dict[str, np.ndarray]
    mean: float  # the training prices' mean and standard deviation, computed here
    std: float

    def dollars(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """model.predict on the rows as training builds its inputs, un-scaled by hand."""
        columns = {name: np.array([r[name] for r in rows]) for name in ("sqft", "rooms", "city")}
        scaled = self.model.predict(self.pre.transform(columns), verbose=0).astype(np.float64)
        return scaled * self.std + self.mean


def _houses() -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(21)
    columns = {
        "sqft": rng.uniform(500, 4000, N),
        "rooms": rng.integers(1, 7, N).astype("float64"),
        "city": rng.choice(CITIES, N).astype(object),
    }
    uplift = np.where(columns["city"] == "boston", 120_000.0, 0.0)
    price = 150.0 * columns["sqft"] + 20_000.0 * columns["rooms"] + uplift + rng.normal(0, 10_000, N)
    return columns, price


def _requests() -> dict[str, Any]:
    return {
        "one_house": {"instances": [NEW_HOUSES[0]]},
        "two_as_columns": {"inputs": {k: [h[k] for h in NEW_HOUSES[1:]] for k in ("sqft", "rooms", "city")}},
    }


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> House:
    keras.utils.set_random_seed(21)
    columns, price = _houses()
    target = TargetScaling.fit(price, "standardize")
    pre = Preprocessor.fit(
        columns, numeric={"sqft": "standardize", "rooms": "minmax"}, categorical={"city": "error"}, target=target
    )
    model = keras.Sequential(
        [keras.Input((pre.output_width,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(pre.transform(columns), (price - price.mean()) / price.std(), epochs=10, verbose=0)
    built = House(
        model, pre, tmp_path_factory.mktemp("house") / "house", columns, float(price.mean()), float(price.std())
    )
    expected = {"one_house": built.dollars(NEW_HOUSES[:1]), "two_as_columns": built.dollars(NEW_HOUSES[1:])}
    manifest = export_model(
        model, pre, _requests(), built.folder, name="house", version="1", expected=expected, training_data=columns
    )
    assert manifest["runtimes"]["litert"]["golden_passed"] is True, manifest["runtimes"]
    return built


def _invoke(function: Function, event: Any) -> Any:
    return function.handler()(event, LambdaContext())


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_answers_are_in_dollars_on_every_trigger_and_both_runtimes(house: House, runtime: str) -> None:
    function = Function(Settings(model_dir=house.folder, serving_runtime=runtime))
    assert function.service is not None and function.service.runtime == runtime
    want = house.dollars(NEW_HOUSES)
    assert (want > 50_000).all(), want  # dollars, where the model's own answers are about -2..2

    response = _invoke(function, http_event("http", "POST", "/v1/models/house:predict", {"instances": NEW_HOUSES}))
    assert response["statusCode"] == 200, response
    np.testing.assert_allclose(body_of(response)["predictions"], want, rtol=1e-6)

    infer = {
        "inputs": [
            {"name": "sqft", "datatype": "FP64", "shape": [3], "data": [h["sqft"] for h in NEW_HOUSES]},
            {"name": "rooms", "datatype": "FP64", "shape": [3], "data": [h["rooms"] for h in NEW_HOUSES]},
            {"name": "city", "datatype": "BYTES", "shape": [3], "data": [h["city"] for h in NEW_HOUSES]},
        ]
    }
    response = _invoke(function, http_event("rest", "POST", "/v2/models/house/infer", infer))
    assert response["statusCode"] == 200, response
    (output,) = body_of(response)["outputs"]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 1)), want, rtol=1e-6)

    direct = _invoke(function, {"instances": NEW_HOUSES[:1]})  # a direct invoke: the event is the v1 body
    np.testing.assert_allclose(direct["predictions"], want[:1], rtol=1e-6)


def test_the_golden_file_holds_the_dollar_values(house: House) -> None:
    golden = {c["name"]: c for c in json.loads((house.folder / "golden.json").read_text())["cases"]}
    np.testing.assert_allclose(golden["one_house"]["expected"]["output_0"], house.dollars(NEW_HOUSES[:1]), rtol=1e-12)
    np.testing.assert_allclose(
        golden["two_as_columns"]["expected"]["output_0"], house.dollars(NEW_HOUSES[1:]), rtol=1e-12
    )
    assert min(golden["one_house"]["expected"]["output_0"][0]) > 50_000


def test_the_drift_baseline_and_the_served_batches_the_observers_see_are_in_dollars(house: House) -> None:
    rows = [{name: col[i] for name, col in house.columns.items()} for i in range(N)]
    training = house.dollars(rows)
    outputs = json.loads((house.folder / "baseline.json").read_text())["outputs"]["output_0"]
    assert outputs["min"] == pytest.approx([training.min()], rel=1e-6)
    assert outputs["max"] == pytest.approx([training.max()], rel=1e-6)
    assert outputs["mean"] == pytest.approx([training.mean()], rel=1e-5)

    function = Function(Settings(model_dir=house.folder, serving_runtime="tensorflow"))
    assert function.service is not None
    seen: list[np.ndarray] = []
    function.service.observers.append(lambda columns, prediction: seen.append(prediction.outputs["output_0"]))
    response = _invoke(function, http_event("http", "POST", "/v1/models/house:predict", {"instances": NEW_HOUSES}))
    assert response["statusCode"] == 200, response
    np.testing.assert_allclose(seen[-1], house.dollars(NEW_HOUSES), rtol=1e-6)


def test_expected_in_the_models_units_is_refused_saying_answers_are_in_trainings(house: House, tmp_path: Path) -> None:
    scaled = {case: (house.dollars(rows) - house.mean) / house.std for case, rows in _cases().items()}
    with pytest.raises(ExportError) as info:
        export_model(house.model, house.pre, _requests(), tmp_path / "out", name="house", version="1", expected=scaled)
    assert "answers are served in training's units (the target un-scaled), so `expected` must be too" in str(
        info.value.message
    )
    assert not (tmp_path / "out").exists()


def test_a_target_scaling_for_another_output_is_refused_at_export(house: House, tmp_path: Path) -> None:
    _, price = _houses()
    pre = Preprocessor(house.pre.features, target=TargetScaling.fit({"price": price}))
    expected = {case: house.dollars(rows) for case, rows in _cases().items()}
    with pytest.raises(ExportError) as info:
        export_model(house.model, pre, _requests(), tmp_path / "out", name="house", version="1", expected=expected)
    assert info.value.message == (
        "the preprocessor's target scaling does not fit the model: the target scaling names output 'price', "
        "but the model's outputs are ['output_0']"
    )


def _cases() -> dict[str, list[dict[str, Any]]]:
    return {"one_house": NEW_HOUSES[:1], "two_as_columns": NEW_HOUSES[1:]}

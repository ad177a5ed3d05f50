"""Issue 9, item 2, at the core: numbers the model's dtype cannot hold are a 422 naming the feature, and a
non-finite model output is never an answer (non_finite_output, naming the instance and the output)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.errors import InvalidInput, NonFiniteOutput
from handler.export import export_model
from handler.settings import Settings
from tests.golden.conftest import RUNTIMES
from tests.support import zoo

ROW: dict[str, Any] = zoo.cases("churn")[0]["request"]["instances"][0]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("feature", "value"),
    [("tenure_months", 1e39), ("total_charges", 1e300), ("age", -1e300), ("support_calls", 3.5e38)],
)
def test_churn_numbers_float32_cannot_hold_are_a_422_naming_instance_and_feature(
    zoo_service: Callable[[str, str], Service], runtime: str, feature: str, value: float
) -> None:
    service = zoo_service("churn", runtime)
    body = json.loads(json.dumps({"instances": [ROW, {**ROW, feature: value}]}))
    with pytest.raises(InvalidInput) as info:
        service.predict_v1(body)
    error = info.value
    assert type(error) is InvalidInput, f"{type(error).__name__}: {error.message}"  # not a non-finite output
    assert (error.status, error.code) == (422, "invalid_input")
    assert [(e.instance, e.feature) for e in error.errors] == [(1, feature)]
    assert "too large" in error.errors[0].reason
    assert f"instance 1, feature '{feature}'" in error.message
    assert repr(value) not in error.message and str(value) not in error.message


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_churn_total_charges_3e38_is_refused_as_an_input_on_both_runtimes(
    zoo_service: Callable[[str, str], Service], runtime: str
) -> None:
    """Issue 9 names total_charges 3e38. float32 holds 3e38, and standardised it is 1.5e35, so no check refuses it;
    the model then answers 1.0 on TensorFlow and infinity (a non_finite_output 422) on LiteRT: two runtimes, two
    outcomes for one request. It should be an invalid_input naming the feature, alike on both."""
    body = {"instances": [{**ROW, "total_charges": 3e38}]}
    with pytest.raises(InvalidInput) as info:
        zoo_service("churn", runtime).predict_v1(body)
    assert type(info.value) is InvalidInput, f"{type(info.value).__name__}: {info.value.message}"
    assert [(e.instance, e.feature) for e in info.value.errors] == [(0, "total_charges")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_churn_answers_the_same_row_once_the_value_is_ordinary(
    zoo_service: Callable[[str, str], Service], runtime: str
) -> None:
    case = zoo.cases("churn")[0]
    zoo.check_v1("churn", case, zoo_service("churn", runtime).predict_v1(copy.deepcopy(case["request"])), runtime)


@pytest.fixture(scope="module")
def blows_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two outputs: `finite` sums x; `blows_up` is x * 1e30, infinite in float32 for x above 3.4e8."""
    inputs = keras.Input(shape=(1,), name="x")
    model = keras.Model(
        inputs,
        {
            "finite": keras.layers.Dense(1, kernel_initializer="ones")(inputs),
            "blows_up": keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(1e30))(inputs),
        },
    )
    out = tmp_path_factory.mktemp("blows_up") / "out"
    export_model(model, None, {"ordinary": {"instances": [[1.0], [2.0]]}}, out, name="blows_up", version="1")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_non_finite_model_output_is_refused_naming_the_instance_and_output(blows_up: Path, runtime: str) -> None:
    service = open_service(Settings(model_dir=blows_up), runtime=runtime)
    # x = 1 gives 1e30 (a float32); x = 1e10 gives 1e40, which float32 holds only as infinity.
    assert service.predict_v1({"instances": [[1.0]]}) == {
        "predictions": [{"blows_up": [np.float32(1e30).item()], "finite": [1.0]}]
    }
    with pytest.raises(NonFiniteOutput) as info:
        service.predict_v1({"instances": [[1.0], [1e10]]})
    error = info.value
    assert (error.status, error.code) == (422, "non_finite_output")
    assert [(e.instance, e.feature) for e in error.errors] == [(1, "blows_up")]
    assert "NaN or infinite" in error.errors[0].reason
    assert "predictions" not in json.dumps(error.to_body())


@pytest.mark.slow
def test_a_prediction_keeps_the_good_rows_and_marks_the_non_finite_one(blows_up: Path) -> None:
    service = open_service(Settings(model_dir=blows_up), runtime="tensorflow")
    columns = service.coercer.coerce({"instances": [[1.0], [1e10], [2.0]]}).columns
    prediction = service.run(columns)
    assert sorted(prediction.problems) == [1]
    assert prediction.output_problems[1][0].feature == "blows_up"
    assert prediction.outputs["finite"][[0, 2]].tolist() == [[1.0], [2.0]]

"""The target's scaling, recorded at training: fitted, saved with the preprocessing, applied to served outputs.

Every statistic and un-scaled value is computed by hand from the numbers written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.core.preprocessing import NumericFeature, Preprocessor, TargetScaling
from handler.core.signature import TensorSpec

PRICES = np.array([100_000.0, 200_000.0, 300_000.0, 400_000.0])  # mean 250000, std sqrt(1.25e10), min 1e5, max 4e5
STD = float(np.sqrt(((PRICES - 250_000.0) ** 2).mean()))
COLUMNS = {"sqft": np.array([800.0, 1200.0, 1500.0, 2100.0])}


def test_standardize_fits_mean_and_std_and_round_trips() -> None:
    target = TargetScaling.fit(PRICES, "standardize")
    (entry,) = target.outputs
    assert entry.output is None and entry.mean == (250_000.0,) and entry.std == (pytest.approx(STD),)
    scaled = target.scale(PRICES)
    np.testing.assert_allclose(scaled, (PRICES - 250_000.0) / STD)
    np.testing.assert_allclose(target.unscale(scaled), PRICES)


def test_minmax_scales_into_zero_one() -> None:
    target = TargetScaling.fit(PRICES.reshape(-1, 1), "minmax")  # [n, 1] is one statistic, like [n]
    np.testing.assert_allclose(target.scale(PRICES), [0.0, 1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(target.unscale(np.array([[0.5]])), [[250_000.0]])


def test_per_column_statistics_for_a_target_of_several_columns() -> None:
    y = np.array([[1.0, 10.0], [3.0, 30.0]])
    target = TargetScaling.fit(y, "standardize")
    assert target.outputs[0].mean == (2.0, 20.0) and target.outputs[0].std == (1.0, 10.0)
    np.testing.assert_allclose(target.unscale(np.array([[1.0, -1.0]])), [[3.0, 10.0]])


def test_targets_by_output_name_each_with_its_op() -> None:
    target = TargetScaling.fit(
        {"price": PRICES, "rent": np.array([1.0, 3.0])}, {"price": "minmax", "rent": "standardize"}
    )
    out = target.unscale({"price": np.array([[1.0]]), "rent": np.array([[1.0]]), "other": np.array([[7.0]])})
    assert (
        out["price"].tolist() == [[400_000.0]] and out["rent"].tolist() == [[3.0]] and out["other"].tolist() == [[7.0]]
    )
    with pytest.raises(ValueError, match="one op per output"):
        TargetScaling.fit({"price": PRICES}, {"rent": "minmax"})


def test_a_constant_target_scales_by_one_and_a_non_finite_one_is_refused() -> None:
    assert TargetScaling.fit(np.full(3, 5.0), "standardize").outputs[0].std == (1.0,)
    with pytest.raises(ValueError, match="NaN or infinity"):
        TargetScaling.fit(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"shape \[n\] or \[n, k\]"):
        TargetScaling.fit(np.zeros((2, 2, 2)))


def test_served_outputs_are_unscaled_in_float64_and_rounded_once_to_the_output_dtype() -> None:
    target = TargetScaling.fit(PRICES, "standardize")
    served = target.apply({"output_0": np.array([[0.5], [-1.0]], dtype=np.float32)}, ["output_0"])
    want = np.array([0.5 * STD + 250_000.0, -1.0 * STD + 250_000.0]).astype(np.float32).reshape(2, 1)
    assert served["output_0"].dtype == np.float32 and served["output_0"].tolist() == want.tolist()


def test_an_unscaled_value_beyond_the_dtype_is_infinity_for_the_nan_check() -> None:
    target = TargetScaling.fit(np.array([0.0, 2e38]), "standardize")
    served = target.apply({"output_0": np.array([[100.0]], dtype=np.float32)}, ["output_0"])
    assert np.isinf(served["output_0"]).all()


def _outputs(*specs: tuple[str, str, tuple[int, ...]]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name, dtype, shape) for name, dtype, shape in specs)


@pytest.mark.parametrize(
    ("target", "outputs", "problem"),
    [
        (
            TargetScaling.fit(PRICES),
            _outputs(("a", "float32", (1,)), ("b", "float32", (1,))),
            "the target scaling was fitted on one array but the model has outputs ['a', 'b']",
        ),
        (
            TargetScaling.fit({"price": PRICES}),
            _outputs(("output_0", "float32", (1,))),
            "the target scaling names output 'price', but the model's outputs are ['output_0']",
        ),
        (
            TargetScaling.fit(PRICES),
            _outputs(("output_0", "int32", (1,))),
            "the model's output is int32 [1]: only a float output can be un-scaled",
        ),
        (
            TargetScaling.fit(np.ones((4, 3)) * np.arange(4).reshape(-1, 1)),
            _outputs(("output_0", "float32", (1,))),
            "the target scaling has 3 statistics (one per column) but the model's output is float32 [1]",
        ),
    ],
)
def test_a_scaling_that_does_not_fit_the_outputs_says_why(
    target: TargetScaling, outputs: tuple[TensorSpec, ...], problem: str
) -> None:
    (found,) = target.problems(outputs)
    assert found.startswith(problem), found


def test_saved_with_the_preprocessor_in_format_2_and_reloaded_the_same(tmp_path: Path) -> None:
    target = TargetScaling.fit(PRICES, "minmax")
    pre = Preprocessor.fit(COLUMNS, numeric={"sqft": "standardize"}, categorical={}, target=target)
    pre.save(tmp_path / "preprocessing.json")
    data: dict[str, Any] = json.loads((tmp_path / "preprocessing.json").read_text())
    assert data["format_version"] == 2
    assert data["target"] == {
        "outputs": [
            {"output": None, "op": "minmax", "mean": [250000.0], "std": [STD], "min": [100000.0], "max": [400000.0]}
        ]
    }
    assert Preprocessor.load(tmp_path / "preprocessing.json") == pre


def test_a_preprocessor_without_a_target_keeps_format_1() -> None:
    pre = Preprocessor(features=(NumericFeature("sqft"),))
    data = pre.to_dict()
    assert data["format_version"] == 1 and "target" not in data
    assert Preprocessor.from_dict(data).target is None

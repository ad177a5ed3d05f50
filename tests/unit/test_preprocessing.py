"""The fitted preprocessing: one numpy implementation, saved and reloaded without drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handler.preprocessing import CategoricalFeature, NumericFeature, Preprocessor

COLUMNS = {
    "tenure": np.array([0.0, 12.0, 24.0, 72.0]),
    "score": np.array([1.0, 2.0, 5.0, 3.0]),
    "flag": np.array([0.0, 1.0, 1.0, 0.0]),
    "plan": np.array(["basic", "pro", "basic", "team"], dtype=object),
}


def _fit() -> Preprocessor:
    return Preprocessor.fit(
        COLUMNS,
        numeric={"tenure": "standardize", "score": "minmax", "flag": "passthrough"},
        categorical={"plan": "zeros"},
        order=["plan", "tenure", "score", "flag"],
    )


def test_fit_uses_training_statistics_and_sorted_vocabulary() -> None:
    pre = _fit()
    tenure = pre.feature("tenure")
    assert isinstance(tenure, NumericFeature)
    assert tenure.mean == pytest.approx(27.0)
    assert tenure.std == pytest.approx(float(np.std(COLUMNS["tenure"])))
    plan = pre.feature("plan")
    assert isinstance(plan, CategoricalFeature)
    assert plan.vocabulary == ("basic", "pro", "team")
    assert pre.names == ["plan", "tenure", "score", "flag"]
    assert pre.output_names() == ["plan=basic", "plan=pro", "plan=team", "tenure", "score", "flag"]


def test_transform_gives_training_dtype_and_shape() -> None:
    x = _fit().transform(COLUMNS)
    assert x.dtype == np.float32
    assert x.shape == (4, 6)
    np.testing.assert_allclose(x[:, 0:3].sum(axis=1), 1.0)  # one-hot
    np.testing.assert_allclose(x[:, 3].mean(), 0.0, atol=1e-6)  # standardized
    np.testing.assert_allclose(x[:, 4], [0.0, 0.25, 1.0, 0.5])  # min-max
    np.testing.assert_allclose(x[:, 5], COLUMNS["flag"])  # passthrough


def test_unseen_category_under_zeros_policy_encodes_as_no_column() -> None:
    cols = {**COLUMNS, "plan": np.array(["enterprise", "pro", "basic", "basic"], dtype=object)}
    x = _fit().transform(cols)
    assert x[0, 0:3].tolist() == [0.0, 0.0, 0.0]
    assert x[1, 0:3].tolist() == [0.0, 1.0, 0.0]


def test_saved_and_reloaded_preprocessing_transforms_identically(tmp_path: Path) -> None:
    pre = _fit()
    pre.save(tmp_path / "p.json")
    again = Preprocessor.load(tmp_path / "p.json")
    assert again == pre
    np.testing.assert_array_equal(again.transform(COLUMNS), pre.transform(COLUMNS))


def test_constant_column_does_not_divide_by_zero() -> None:
    pre = Preprocessor.fit({"c": np.array([3.0, 3.0])}, numeric={"c": "standardize"}, categorical={})
    assert np.isfinite(pre.transform({"c": np.array([3.0, 4.0])})).all()


def test_a_preprocessing_file_from_another_format_is_refused() -> None:
    data = _fit().to_dict()
    data["format_version"] = 99
    with pytest.raises(ValueError, match="format_version"):
        Preprocessor.from_dict(data)


def test_preprocessing_imports_neither_tensorflow_nor_keras() -> None:
    code = "import sys, handler.preprocessing; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The fitted preprocessing: one numpy implementation, saved and reloaded without drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handler.core.preprocessing import CategoricalFeature, NumericFeature, Preprocessor
from handler.core.signature import TensorSpec

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


def test_each_feature_lands_in_its_own_columns() -> None:
    one = {"plan": np.array(["team"], dtype=object), "tenure": np.array([27.0]), "score": np.array([2.0]),
           "flag": np.array([1.0])}  # fmt: skip
    # plan=team is the third one-hot column; tenure 27 is the mean (0); score 2 is 1/4 of 1..5; flag passes through.
    assert _fit().transform(one).tolist() == [[0.0, 0.0, 1.0, 0.0, 0.25, 1.0]]


def test_unseen_category_under_zeros_policy_encodes_as_no_column() -> None:
    cols = {**COLUMNS, "plan": np.array(["enterprise", "pro", "basic", "basic"], dtype=object)}
    x = _fit().transform(cols)
    assert x[0, 0:3].tolist() == [0.0, 0.0, 0.0]
    assert x[1, 0:3].tolist() == [0.0, 1.0, 0.0]


def test_a_batch_past_the_small_path_and_its_coded_form_give_the_rows_worked_out_by_hand() -> None:
    # 8 rows: past the few-row path. plan one-hot over (basic, pro, team), "enterprise" unseen -> zeros; tenure 27 is
    # the training mean -> 0; score min-max over 1..5 -> (x - 1) / 4; flag passes through.
    levels = np.array(["pro", "team", "basic", "enterprise"], dtype=object)
    codes = np.array([1, 2, 3, 0, 1, 2, 0, 2])
    columns = {
        "plan": levels[codes],
        "tenure": np.full(8, 27.0),
        "score": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0]),
        "flag": np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
    }
    want = [
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # team
        [1.0, 0.0, 0.0, 0.0, 0.25, 1.0],  # basic
        [0.0, 0.0, 0.0, 0.0, 0.5, 0.0],  # enterprise: no column
        [0.0, 1.0, 0.0, 0.0, 0.75, 1.0],  # pro
        [0.0, 0.0, 1.0, 0.0, 1.0, 0.0],  # team
        [1.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # basic
        [0.0, 1.0, 0.0, 0.0, 0.25, 0.0],  # pro
        [1.0, 0.0, 0.0, 0.0, 0.5, 1.0],  # basic
    ]
    pre = _fit()
    assert pre.transform(columns).tolist() == want
    # A columnar reader's (codes, levels): each level looked up once, the same rows.
    assert pre.transform(columns, {"plan": (codes, levels)}).tolist() == want


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
    code = (
        "import sys, handler.core.preprocessing; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"  # noqa: E501
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_feature_specs_say_what_a_client_sends() -> None:
    pre = Preprocessor.fit(
        COLUMNS,
        numeric={"tenure": "standardize", "score": "minmax", "flag": "passthrough"},
        categorical={"plan": "error"},
        order=["plan", "tenure", "score", "flag"],
    )
    specs = pre.feature_specs()
    # Numbers are float64 scalars whose NaN stand-in is a training value: the mean (27), else the mid-range.
    assert specs == (
        TensorSpec("plan", "string"),
        TensorSpec("tenure", "float64", fill_value=27.0),
        TensorSpec("score", "float64", fill_value=3.0),
        TensorSpec("flag", "float64", fill_value=0.5),
    )
    assert specs[0].vocabulary == frozenset({"basic", "pro", "team"})  # oov="error": a strict vocabulary
    assert _fit().feature_specs()[0].vocabulary is None  # oov="zeros": any category is taken


def test_overflows_name_the_feature_whose_value_the_model_dtype_cannot_hold() -> None:
    pre = _fit()
    cols = {**COLUMNS, "tenure": np.array([1.0, 1e300, 2.0, 3.0]), "score": np.array([1.0, 2.0, 3.0, -1e300])}
    x = pre.transform(cols)
    assert pre.overflows(x) == {1: ["tenure"], 3: ["score"]}
    assert pre.overflows(pre.transform(COLUMNS)) == {}


def test_the_few_rows_path_gives_the_same_bits_as_the_batch_path() -> None:
    """transform() runs 1-4 rows in plain Python; the golden cases of one row were computed by training on
    the batch path, so both must give identical float32 bits, unseen categories and extremes included."""
    import handler.core.preprocessing as preprocessing
    from tests.support.zoo import model_dir
    from training.churn_data import generate

    pre = Preprocessor.load(model_dir("churn") / "preprocessing.json")
    cols, _ = generate(40, 11)
    cols["payment_method"][3] = "unseen"
    cols["total_charges"][5] = 1e30
    for n in (1, 2, 4):
        for start in range(0, 36, 4):
            rows = {k: v[start : start + n] for k, v in cols.items()}
            small = pre.transform(rows)
            batch = pre.transform({k: np.concatenate([v, v[:5]]) for k, v in rows.items()})[:n]  # 5+ rows: numpy
            assert small.dtype == batch.dtype and small.tobytes() == batch.tobytes(), (n, start)
    assert preprocessing._SMALL_BATCH == 4

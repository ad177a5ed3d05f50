"""Coercion: every way a client sends data becomes the training columns, or a 422 naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from handler.core.coerce import CoercePolicy, Coercer
from handler.errors import InvalidInput
from handler.preprocessing import Preprocessor
from tests.conftest import ARTIFACTS

PRE = Preprocessor.load(ARTIFACTS / "preprocessing.json")
NAMES = PRE.names
ROW: dict[str, Any] = {
    "tenure_months": 12.0,
    "monthly_charges": 70.5,
    "total_charges": 846.0,
    "support_calls": 1.0,
    "age": 40.0,
    "contract_type": "one_year",
    "payment_method": "credit_card",
    "internet_service": "dsl",
    "data_usage_gb": 10.5,
    "days_since_last_login": 3.0,
    "satisfaction_score": 4.0,
    "paperless_billing": 1.0,
}


def coerce(body: Any, **policy: Any) -> Any:
    return Coercer(PRE, CoercePolicy(**policy)).coerce(body)


def errors_of(body: Any, **policy: Any) -> list[tuple[Any, Any, str]]:
    with pytest.raises(InvalidInput) as info:
        coerce(body, **policy)
    return [(e.instance, e.feature, e.reason) for e in info.value.errors]


def test_row_dicts_in_any_key_order_give_the_same_columns() -> None:
    shuffled = dict(reversed(list(ROW.items())))
    a, b = coerce({"instances": [ROW]}), coerce({"instances": [shuffled]})
    for name in NAMES:
        assert a.columns[name].tolist() == b.columns[name].tolist()
    assert a.columns["tenure_months"].dtype == np.float64
    assert a.n == 1 and a.format == "instances" and a.batched


def test_ordered_lists_follow_the_training_column_order() -> None:
    req = coerce({"instances": [[ROW[n] for n in NAMES]]})
    assert {n: req.columns[n][0] for n in NAMES} == ROW


def test_ints_bools_and_numeric_strings_become_floats() -> None:
    row = {**ROW, "tenure_months": 12, "paperless_billing": True, "monthly_charges": " 70.5 "}
    req = coerce({"instances": [row]})
    assert req.columns["tenure_months"][0] == 12.0
    assert req.columns["paperless_billing"][0] == 1.0
    assert req.columns["monthly_charges"][0] == 70.5


def test_single_example_without_batch_dimension_is_columnar_unbatched() -> None:
    req = coerce({"inputs": ROW})
    assert req.n == 1 and req.format == "inputs" and not req.batched
    req = coerce({"inputs": [ROW[n] for n in NAMES]})
    assert req.n == 1 and not req.batched


def test_columnar_batch() -> None:
    req = coerce({"inputs": {n: [v, v] for n, v in ROW.items()}})
    assert req.n == 2 and req.batched and req.format == "inputs"


def test_missing_and_unknown_features_are_named_per_instance() -> None:
    bad = {k: v for k, v in ROW.items() if k != "age"} | {"agee": 40}
    errs = errors_of({"instances": [ROW, bad]})
    assert (1, "age", "is missing") in errs
    assert (1, "agee", "is not a feature of this model") in errs
    assert all(i == 1 for i, _, _ in errs)


def test_unknown_features_can_be_ignored_by_policy() -> None:
    assert coerce({"instances": [{**ROW, "extra": 1}]}, unknown_features="ignore").n == 1


def test_wrong_types_name_the_feature_and_the_type() -> None:
    errs = errors_of({"instances": [{**ROW, "age": [40], "contract_type": 2, "tenure_months": None}]})
    assert (0, "age", "must be a number, got array") in errs
    assert (0, "contract_type", "must be a string category, got number") in errs
    assert (0, "tenure_months", "must be a number, got null") in errs


def test_wrong_length_list_says_the_expected_order() -> None:
    [(i, f, reason)] = errors_of({"instances": [[1, 2, 3]]})
    assert i == 0 and f is None
    assert "has 3 values but the model takes 12" in reason and "tenure_months, monthly_charges" in reason


def test_strict_vocabulary_rejects_unseen_category_and_lenient_one_accepts() -> None:
    [(i, f, reason)] = errors_of({"instances": [{**ROW, "contract_type": "lifetime"}]})
    assert (i, f) == (0, "contract_type") and "not a known category" in reason and "lifetime" not in reason
    assert coerce({"instances": [{**ROW, "payment_method": "crypto"}]}).n == 1


def test_non_numeric_strings_and_numeric_strings_under_reject_policy() -> None:
    assert errors_of({"instances": [{**ROW, "age": "forty"}]}) == [
        (0, "age", "must be a number, got a string that is not one")
    ]
    [(_, f, reason)] = errors_of({"instances": [{**ROW, "age": "40"}]}, numeric_strings="reject")
    assert f == "age" and "NUMERIC_STRINGS=reject" in reason


def test_nan_and_infinity_are_rejected_or_imputed_with_the_training_mean() -> None:
    body = json.loads(json.dumps({"instances": [{**ROW, "age": float("nan"), "tenure_months": float("inf")}]}))
    errs = errors_of(body)
    assert {f for _, f, _ in errs} == {"age", "tenure_months"}
    assert all("finite" in r for _, _, r in errs)
    req = coerce(body, non_finite="impute")
    assert req.columns["age"][0] == pytest.approx(PRE.feature("age").mean)  # type: ignore[union-attr]
    assert math.isfinite(req.columns["tenure_months"][0])


def test_numbers_too_large_for_a_float_are_rejected() -> None:
    [(_, f, reason)] = errors_of({"instances": [{**ROW, "age": 10**400}]})
    assert f == "age" and "too large" in reason


def test_batch_over_the_limit_and_empty_batch() -> None:
    [(_, f, reason)] = errors_of({"instances": [ROW] * 5}, max_batch_size=4)
    assert f == "instances" and "MAX_BATCH_SIZE=4" in reason
    [(_, f, reason)] = errors_of({"instances": []})
    assert "empty" in reason


def test_body_shape_errors() -> None:
    assert "JSON object" in errors_of([1, 2])[0][2]
    assert "exactly one of" in errors_of({"instances": [ROW], "inputs": ROW})[0][2]
    assert "exactly one of" in errors_of({})[0][2]
    assert errors_of({"instances": [ROW], "extra": 1}) == [(None, "extra", "unknown top-level key")]
    assert "array of examples" in errors_of({"instances": ROW})[0][2]


def test_columnar_inputs_with_mismatched_lengths_or_mixed_scalars() -> None:
    cols = {n: [v, v] for n, v in ROW.items()}
    cols["age"] = [40]
    assert "different lengths" in errors_of({"inputs": cols})[0][2]
    cols["age"] = 40
    assert errors_of({"inputs": cols})[0][1] == "age"


def test_every_problem_is_reported_not_just_the_first() -> None:
    rows = [{**ROW, "age": "x"}, ROW, {**ROW, "contract_type": "nope", "support_calls": {}}]
    errs = errors_of({"instances": rows})
    assert sorted((i, f) for i, f, _ in errs) == [(0, "age"), (2, "contract_type"), (2, "support_calls")]


def test_coerce_rows_keeps_good_rows_and_reports_bad_ones_with_their_index() -> None:
    coercer = Coercer(PRE, CoercePolicy())
    cols, errs, good = coercer.coerce_rows([ROW, {**ROW, "age": "x"}, ROW], first_index=10)
    assert good == [0, 2]
    assert len(cols["age"]) == 2
    assert [(e.instance, e.feature) for e in errs] == [(11, "age")]

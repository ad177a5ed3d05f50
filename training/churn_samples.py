"""The churn sample requests that become golden cases: one per way a real client sends data.

Each case keeps, beside the body a client sends, the rows it means as training holds them
(numbers as floats, categories as strings, in training column order). The golden outputs are
computed from those rows by the training pipeline, never from the body through the server.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from training.churn_data import CATEGORICAL_FEATURES, COLUMNS, row

NUMERIC = [c for c in COLUMNS if c not in CATEGORICAL_FEATURES]
Row = dict[str, Any]
Case = tuple[dict[str, Any], list[Row]]  # (the body as sent, the rows it means)


def _shuffled(r: Row, rnd: random.Random) -> Row:
    keys = list(r)
    while keys == list(r):
        rnd.shuffle(keys)
    return {k: r[k] for k in keys}


def _as_ints(r: Row) -> Row:
    return {k: int(round(v)) if k in NUMERIC else v for k, v in r.items()}


def _as_floats(r: Row) -> Row:
    return {k: float(v) if k in NUMERIC else v for k, v in r.items()}


def _as_strings(r: Row) -> Row:
    return {k: repr(v) if k in NUMERIC else v for k, v in r.items()}


def _long_decimals(r: Row) -> Row:
    """Digits past the data's two decimals: a server that rounds, or parses only a prefix, answers otherwise."""
    return {k: v + 0.123456789 if k in NUMERIC and k != "paperless_billing" else v for k, v in r.items()}


def _ordered(r: Row) -> list[Any]:
    return [r[c] for c in COLUMNS]


def sample_cases(held_out: dict[str, np.ndarray]) -> dict[str, Case]:
    """v1 bodies exactly as clients send them, with the rows they mean, keyed by what each exercises."""
    rnd = random.Random(7)
    rows = [row(held_out, i) for i in range(len(held_out["age"]))]
    take = iter(rows)
    s: dict[str, Case] = {}

    r = next(take)
    s["named_features_training_order"] = ({"instances": [r]}, [r])
    for k in range(5):
        rs = [next(take) for _ in range(k + 1)]
        s[f"named_features_shuffled_keys_{k}"] = ({"instances": [_shuffled(x, rnd) for x in rs]}, rs)
    r = next(take)
    s["named_features_reversed_keys"] = ({"instances": [dict(reversed(list(r.items())))]}, [r])
    for k in range(3):
        rs = [next(take) for _ in range(2 * k + 1)]
        s[f"ordered_list_rows_{k}"] = ({"instances": [_ordered(x) for x in rs]}, rs)
    r = _as_ints(next(take))
    s["ordered_list_with_ints"] = ({"instances": [_ordered(r)]}, [_as_floats(r)])
    r = next(take)
    s["single_example_columnar_named"] = ({"inputs": r}, [r])
    r = next(take)
    s["single_example_columnar_ordered"] = ({"inputs": _ordered(r)}, [r])
    batch = [next(take) for _ in range(6)]
    s["columnar_batch_named"] = ({"inputs": {c: [x[c] for x in batch] for c in reversed(COLUMNS)}}, batch)
    rs = [next(take) for _ in range(3)]
    s["columnar_batch_ordered_rows"] = ({"inputs": [_ordered(x) for x in rs]}, rs)
    for k in range(3):
        r = _as_ints(next(take))
        s[f"ints_where_floats_expected_{k}"] = ({"instances": [r]}, [_as_floats(r)])
    rs = [next(take), next(take)]
    s["numeric_strings"] = ({"instances": [_as_strings(x) for x in rs]}, rs)
    r = next(take)
    sent = {k: f" {v} " if k == "tenure_months" else v for k, v in _as_strings(r).items()}
    s["numeric_strings_with_whitespace"] = ({"instances": [sent]}, [r])
    a, b = next(take), next(take)
    s["booleans_for_binary_feature"] = (
        {"instances": [{**a, "paperless_billing": True}, {**b, "paperless_billing": False}]},
        [{**a, "paperless_billing": 1.0}, {**b, "paperless_billing": 0.0}],
    )
    r = {**next(take), "payment_method": "crypto_wallet"}
    s["unseen_payment_method"] = ({"instances": [r]}, [r])
    r = {**next(take), "internet_service": "satellite"}
    s["unseen_internet_service"] = ({"instances": [r]}, [r])
    rs = [{**next(take), "payment_method": "gift_card"}, next(take)]
    s["unseen_categories_mixed_with_known"] = ({"instances": rs}, rs)
    r = _long_decimals(next(take))
    s["long_float64_decimals"] = ({"instances": [r]}, [r])
    r = {**next(take), "tenure_months": 0.0, "total_charges": 0.0}
    s["zero_tenure_new_customer"] = ({"instances": [{**r, "tenure_months": 0, "total_charges": 0}]}, [r])
    r = {**next(take), "monthly_charges": 450.0, "support_calls": 25.0, "age": 104.0}
    s["values_outside_training_range"] = ({"instances": [r]}, [r])
    r = {**_as_floats(_as_ints(next(take))), "monthly_charges": 89.95, "data_usage_gb": 12.25}
    sent = {**_as_ints(r), "monthly_charges": "89.95", "data_usage_gb": 12.25}
    s["mixed_ints_floats_strings"] = ({"instances": [sent]}, [r])
    r = next(take)
    s["batch_of_1"] = ({"instances": [r]}, [r])
    rs = [next(take) for _ in range(32)]
    s["batch_of_32_shuffled_keys"] = ({"instances": [_shuffled(x, rnd) for x in rs]}, rs)
    rs = [next(take) for _ in range(100)]
    s["batch_of_100"] = ({"instances": rs}, rs)
    rs = [next(take) for _ in range(100)]
    s["batch_of_100_ordered_lists"] = ({"instances": [_ordered(x) for x in rs]}, rs)
    return s


def training_columns(rows: list[Row]) -> dict[str, np.ndarray]:
    """Rows as training holds its data: one float64 or str column per feature."""
    return {
        c: np.array([r[c] for r in rows], dtype=object if c in CATEGORICAL_FEATURES else np.float64) for c in COLUMNS
    }

"""The sample requests that become golden cases: one per way a real client sends data."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from training.data import CATEGORICAL_FEATURES, COLUMNS, row

NUMERIC = [c for c in COLUMNS if c not in CATEGORICAL_FEATURES]


def _shuffled(r: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    keys = list(r)
    while keys == list(r):
        rnd.shuffle(keys)
    return {k: r[k] for k in keys}


def _as_ints(r: dict[str, Any]) -> dict[str, Any]:
    return {k: int(round(v)) if k in NUMERIC else v for k, v in r.items()}


def _as_strings(r: dict[str, Any]) -> dict[str, Any]:
    return {k: repr(v) if k in NUMERIC else v for k, v in r.items()}


def _nudged(v: Any) -> Any:
    """A value with more float64 digits than float32 can hold."""
    return v + 1e-9 / 3


def _ordered(r: dict[str, Any]) -> list[Any]:
    return [r[c] for c in COLUMNS]


def sample_requests(held_out: dict[str, np.ndarray]) -> dict[str, Any]:
    """v1 bodies exactly as clients send them, keyed by what each one exercises."""
    rnd = random.Random(7)
    rows = [row(held_out, i) for i in range(len(held_out["age"]))]
    take = iter(rows)
    s: dict[str, Any] = {}

    s["named_features_training_order"] = {"instances": [next(take)]}
    for k in range(5):
        s[f"named_features_shuffled_keys_{k}"] = {"instances": [_shuffled(next(take), rnd) for _ in range(k + 1)]}
    s["named_features_reversed_keys"] = {"instances": [dict(reversed(list(next(take).items())))]}
    for k in range(3):
        s[f"ordered_list_rows_{k}"] = {"instances": [_ordered(next(take)) for _ in range(2 * k + 1)]}
    s["ordered_list_with_ints"] = {"instances": [_ordered(_as_ints(next(take)))]}
    s["single_example_columnar_named"] = {"inputs": next(take)}
    s["single_example_columnar_ordered"] = {"inputs": _ordered(next(take))}
    batch = [next(take) for _ in range(6)]
    s["columnar_batch_named"] = {"inputs": {c: [r[c] for r in batch] for c in reversed(COLUMNS)}}
    s["columnar_batch_ordered_rows"] = {"inputs": [_ordered(next(take)) for _ in range(3)]}
    for k in range(3):
        s[f"ints_where_floats_expected_{k}"] = {"instances": [_as_ints(next(take))]}
    s["numeric_strings"] = {"instances": [_as_strings(next(take)), _as_strings(next(take))]}
    s["numeric_strings_with_whitespace"] = {
        "instances": [{k: f" {v} " if k == "tenure_months" else v for k, v in _as_strings(next(take)).items()}]
    }
    s["booleans_for_binary_feature"] = {
        "instances": [{**next(take), "paperless_billing": True}, {**next(take), "paperless_billing": False}]
    }
    s["unseen_payment_method"] = {"instances": [{**next(take), "payment_method": "crypto_wallet"}]}
    s["unseen_internet_service"] = {"instances": [{**next(take), "internet_service": "satellite"}]}
    s["unseen_categories_mixed_with_known"] = {"instances": [{**next(take), "payment_method": "gift_card"}, next(take)]}
    s["long_float64_decimals"] = {
        "instances": [{k: (_nudged(v) if k in NUMERIC else v) for k, v in next(take).items()}]
    }
    s["zero_tenure_new_customer"] = {"instances": [{**next(take), "tenure_months": 0, "total_charges": 0}]}
    s["values_outside_training_range"] = {
        "instances": [{**next(take), "monthly_charges": 450.0, "support_calls": 25, "age": 104}]
    }
    s["mixed_ints_floats_strings"] = {
        "instances": [{**_as_ints(next(take)), "monthly_charges": "89.95", "data_usage_gb": 12.25}]
    }
    s["batch_of_1"] = {"instances": [next(take)]}
    s["batch_of_32_shuffled_keys"] = {"instances": [_shuffled(next(take), rnd) for _ in range(32)]}
    s["batch_of_100"] = {"instances": [next(take) for _ in range(100)]}
    s["batch_of_100_ordered_lists"] = {"instances": [_ordered(next(take)) for _ in range(100)]}
    return s

"""Synthetic customer-churn data, generated from a seed (nothing is downloaded).

Numeric features on very different scales and categorical ones, so that serving without the
fitted preprocessing gives visibly wrong answers.
"""

from __future__ import annotations

import numpy as np

NUMERIC_FEATURES = {
    # name: preprocessing op
    "tenure_months": "standardize",
    "monthly_charges": "standardize",
    "total_charges": "standardize",
    "support_calls": "standardize",
    "age": "standardize",
    "data_usage_gb": "standardize",
    "days_since_last_login": "standardize",
    "satisfaction_score": "minmax",
    "paperless_billing": "passthrough",
}
CATEGORICAL_FEATURES = {
    # name: out-of-vocabulary policy
    "contract_type": "error",  # a contract type we never saw is a client bug: reject it
    "payment_method": "zeros",  # new payment methods appear; encode as "none of the known"
    "internet_service": "zeros",
}
CATEGORIES = {
    "contract_type": ["month_to_month", "one_year", "two_year"],
    "payment_method": ["bank_transfer", "credit_card", "electronic_check", "mailed_check"],
    "internet_service": ["dsl", "fiber_optic", "none"],
}
# Raw column order: what ordered-list requests follow.
COLUMNS = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "age",
    "contract_type",
    "payment_method",
    "internet_service",
    "data_usage_gb",
    "days_since_last_login",
    "satisfaction_score",
    "paperless_billing",
]


def generate(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """n customers as raw columns (numbers as float64, categories as str) and churn labels."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n).astype(np.float64)
    contract = rng.choice(CATEGORIES["contract_type"], n, p=[0.55, 0.25, 0.20])
    payment = rng.choice(CATEGORIES["payment_method"], n, p=[0.22, 0.22, 0.34, 0.22])
    internet = rng.choice(CATEGORIES["internet_service"], n, p=[0.35, 0.45, 0.20])
    monthly = np.round(rng.uniform(18.0, 120.0, n) + np.where(internet == "fiber_optic", 15.0, 0.0), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, n), 2)
    support = rng.poisson(1.5, n).astype(np.float64)
    age = rng.integers(18, 91, n).astype(np.float64)
    usage = np.round(rng.gamma(2.0, 12.0, n), 1)
    last_login = rng.integers(0, 366, n).astype(np.float64)
    satisfaction = rng.integers(1, 6, n).astype(np.float64)
    paperless = rng.integers(0, 2, n).astype(np.float64)

    logit = (
        -0.8
        - 0.045 * tenure
        + 0.018 * (monthly - 65.0)
        + 0.45 * support
        - 0.012 * (age - 50.0)
        + 0.006 * last_login
        - 0.55 * (satisfaction - 3.0)
        + 0.30 * paperless
        + np.select([contract == "month_to_month", contract == "one_year"], [1.3, 0.0], -1.2)
        + np.where(payment == "electronic_check", 0.6, 0.0)
        + np.where(internet == "fiber_optic", 0.4, np.where(internet == "none", -0.5, 0.0))
    )
    labels = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    columns = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "support_calls": support,
        "age": age,
        "contract_type": contract.astype(object),
        "payment_method": payment.astype(object),
        "internet_service": internet.astype(object),
        "data_usage_gb": usage,
        "days_since_last_login": last_login,
        "satisfaction_score": satisfaction,
        "paperless_billing": paperless,
    }
    return columns, labels


def row(columns: dict[str, np.ndarray], i: int) -> dict[str, object]:
    """Row i as a client would send it in JSON (native Python types, training column order)."""
    out: dict[str, object] = {}
    for name in COLUMNS:
        v = columns[name][i]
        out[name] = str(v) if name in CATEGORICAL_FEATURES else float(v)
    return out

"""Golden requests re-laid as other clients would send the same examples (OIP v2 tensors), written from the
protocols' documented layouts, not from the server's code.

A TF Serving v1 request holds its examples as rows (`instances`) or columns (`inputs`); a single-input model
may send each example bare, a tabular model (every feature a scalar) as an array in feature order. `rows_of`
turns any of these into named rows, which `zoo.v2_body` turns into one OIP v2 tensor per feature.
"""

from __future__ import annotations

from typing import Any

from tests.support import zoo


def _named(model: str, example: Any) -> dict[str, Any]:
    names = zoo.feature_names(model)
    if isinstance(example, dict) and list(example) != ["b64"]:
        return example
    if len(names) == 1:
        return {names[0]: example}
    assert isinstance(example, list) and len(example) == len(names), (model, example)
    return dict(zip(names, example, strict=True))


def rows_of(model: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    """The examples of a golden request as named rows, whatever layout the request uses."""
    request = case["request"]
    if "instances" in request:
        return [_named(model, r) for r in request["instances"]]
    inputs = request["inputs"]
    names = zoo.feature_names(model)
    if isinstance(inputs, dict) and set(inputs) == set(names):
        if not case["batched"]:
            return [inputs]
        n = len(next(iter(inputs.values())))
        return [{k: v[i] for k, v in inputs.items()} for i in range(n)]
    # A bare value: one example (or a batch of them) of a single-input model, or ordered rows of a tabular one.
    return [_named(model, e) for e in (inputs if case["batched"] else [inputs])]


def v2_infer_body(model: str, case: dict[str, Any]) -> dict[str, Any] | None:
    """The golden request as OIP v2 tensors, one per feature; None when a value has no plain v2 form (b64)."""
    return zoo.v2_body(model, rows_of(model, case))


def churn_rows_tensor(case: dict[str, Any]) -> dict[str, Any]:
    """A churn golden request as its one `features` tensor of ordered rows (BYTES: numbers and strings mixed)."""
    names = zoo.feature_names("churn")
    rows = [[r[n] for n in names] for r in rows_of("churn", case)]
    return {
        "id": case["name"],
        "inputs": [{"name": "features", "shape": [len(rows), len(names)], "datatype": "BYTES", "data": rows}],
    }

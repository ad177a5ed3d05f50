"""Model outputs (one array per named output) -> answers as TF Serving gives them.

- Rows (`instances`) get `predictions`, one entry per instance: the output's value when the
  model has one output, an object keyed by output name when it has several.
- Columns (`inputs`) get `outputs`: the batch for one output, `{name: batch}` for several; a
  request without the batch dimension gets an answer without it.
Never stacked by output: instance i's answer is at position i.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from handler.core.coerce import CoercedRequest


def jsonable(arr: np.ndarray) -> list[Any]:
    """An array as nested JSON lists; byte strings become text (or {"b64": ...} when not UTF-8)."""
    if arr.dtype != object and arr.dtype.kind != "S":
        out: list[Any] = arr.tolist()
        return out
    return [_text(v) if arr.ndim == 1 else jsonable(np.asarray(v)) for v in arr]


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(v).decode()}
    return v


def per_instance(outputs: Mapping[str, np.ndarray], names: list[str]) -> list[Any]:
    """One JSON value per instance: the output's value, or {name: value} for several outputs."""
    if len(names) == 1:
        return jsonable(outputs[names[0]])
    columns = [jsonable(outputs[name]) for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def format_v1(outputs: Mapping[str, np.ndarray], req: CoercedRequest, names: list[str]) -> dict[str, Any]:
    """Shape outputs as TF Serving does: rows -> "predictions", columns -> "outputs"."""
    if req.format == "instances":
        return {"predictions": per_instance(outputs, names)}
    if len(names) == 1:
        batch = jsonable(outputs[names[0]])
        return {"outputs": batch if req.batched else batch[0]}
    by_name = {name: jsonable(outputs[name]) for name in names}
    return {"outputs": by_name if req.batched else {name: b[0] for name, b in by_name.items()}}

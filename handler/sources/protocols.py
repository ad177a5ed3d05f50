"""Open Inference Protocol v2 bodies <-> the core's TF-Serving v1 columns (no Keras, no AWS here).

An OIP v2 request carries tensors. We accept two layouts:
- one tensor per raw feature, named like the feature, shape [n] or [n, 1];
- one tensor named like the manifest's input holding ordered raw rows, shape [n, n_features]
  (datatype BYTES when some features are categorical: JSON strings and numbers mixed).
Either becomes a v1 body for the core's coercer, so dtype, range and vocabulary checks are the
same as for v1; only the tensor framing (shape, datatype, data length) is checked here.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from handler.core.service import Service
from handler.errors import FieldError, InvalidInput
from handler.preprocessing import CategoricalFeature

FLOAT_TYPES = ("FP16", "FP32", "FP64")
INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
NUMERIC_TYPES = (*FLOAT_TYPES, *INT_TYPES, "BOOL")
DATATYPES = (*NUMERIC_TYPES, "BYTES")

# numpy dtype name of a model output -> OIP datatype.
_OIP_OF_NUMPY = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
}


def oip_datatype(numpy_dtype: str) -> str:
    """OIP datatype name for a numpy dtype name (BYTES for anything non-numeric)."""
    return _OIP_OF_NUMPY.get(numpy_dtype, "BYTES")


def _flatten(data: Any) -> list[Any]:
    """OIP allows data row-major flattened or nested; the core wants it flat."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def _shape_error(shape: Sequence[Any]) -> str | None:
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return f"shape {list(shape)} must be a list of non-negative integers"
    return None


def _check_values(datatype: str, values: list[Any]) -> str | None:
    """A JSON value that cannot be of the declared datatype, as a reason, or None."""
    # The position and kind of the value, never the value: error answers do not carry the request's values.
    for i, v in enumerate(values):
        if datatype == "BOOL" and not isinstance(v, bool):
            return f"data[{i}] is not true/false, but datatype BOOL holds true/false"
        if datatype in INT_TYPES and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer())
        ):
            return f"data[{i}] is not an integer, but datatype {datatype} holds integers"
        if datatype in FLOAT_TYPES and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"data[{i}] is not a number, but datatype {datatype} holds numbers"
    return None


class V2Protocol:
    """Translates OIP v2 bodies for one model's feature spec."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.features = service.artifacts.preprocessor.features
        self.names = [f.name for f in self.features]
        self.rows_input = str(service.artifacts.manifest.inputs.get("name", "features"))

    # --- requests ------------------------------------------------------------------------

    def to_v1(self, body: dict[str, Any]) -> dict[str, Any]:
        """A parsed OIP v2 infer body -> a v1 body (columns or rows); raise InvalidInput naming each tensor."""
        tensors = body.get("inputs")
        if not isinstance(tensors, list) or not tensors:
            raise InvalidInput([FieldError(None, "inputs", "must be a non-empty array of tensors")])
        names = [t.get("name") for t in tensors if isinstance(t, dict)]
        if len(names) != len(tensors):
            raise InvalidInput([FieldError(None, "inputs", "every tensor must be an object")])
        if self.rows_input in names and self.rows_input not in self.names:
            if len(tensors) != 1:
                others = ", ".join(str(n) for n in names if n != self.rows_input)
                raise InvalidInput(
                    [
                        FieldError(
                            None,
                            self.rows_input,
                            f"send either this tensor alone or one per feature, not also {others}",
                        )
                    ]
                )
            return {"instances": self._rows(tensors[0])}
        return {"inputs": self._columns(tensors)}

    def _frame(self, t: dict[str, Any], errors: list[FieldError]) -> tuple[list[int], list[Any]] | None:
        """Check shape, datatype and data length of one tensor; return (shape, flat data)."""
        name = str(t.get("name"))
        before = len(errors)
        shape, datatype, data = t.get("shape"), t.get("datatype"), t.get("data")
        if datatype not in DATATYPES:
            errors.append(FieldError(None, name, f"datatype {datatype!r} is not one of {', '.join(DATATYPES)}"))
        if not isinstance(shape, list) or (reason := _shape_error(shape)) is not None:
            reason = "shape must be a list of non-negative integers" if not isinstance(shape, list) else reason
            errors.append(FieldError(None, name, reason or "bad shape"))
            return None
        flat = _flatten(data)
        if not isinstance(data, list):
            errors.append(FieldError(None, name, "data must be an array"))
        elif len(flat) != math.prod(shape):
            errors.append(
                FieldError(None, name, f"data has {len(flat)} values but shape {shape} needs {math.prod(shape)}")
            )
        elif datatype in NUMERIC_TYPES and (reason := _check_values(str(datatype), flat)) is not None:
            errors.append(FieldError(None, name, reason))
        return (shape, flat) if len(errors) == before else None

    def _columns(self, tensors: list[dict[str, Any]]) -> dict[str, list[Any]]:
        errors: list[FieldError] = []
        columns: dict[str, list[Any]] = {}
        lengths: dict[str, int] = {}
        for t in tensors:
            name = str(t.get("name"))
            if name in columns or name in lengths:
                errors.append(FieldError(None, name, "is sent twice"))
                continue
            framed = self._frame(t, errors)
            if framed is None:
                lengths[name] = -1
                continue
            shape, flat = framed
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                errors.append(FieldError(None, name, f"shape {shape} must be [n] or [n, 1]: one value per example"))
                continue
            if name in self.names:
                feature = self.features[self.names.index(name)]
                categorical = isinstance(feature, CategoricalFeature)
                if categorical and t.get("datatype") != "BYTES":
                    errors.append(
                        FieldError(None, name, f"is categorical: send datatype BYTES, not {t.get('datatype')}")
                    )
                    continue
                if not categorical and t.get("datatype") == "BYTES":
                    errors.append(FieldError(None, name, "is numeric: send datatype FP32, FP64, INT32, INT64 or BOOL"))
                    continue
            lengths[name] = shape[0]
            columns[name] = flat
        if len({n for n in lengths.values() if n >= 0}) > 1:
            desc = ", ".join(f"{k}={v}" for k, v in lengths.items() if v >= 0)
            errors.append(FieldError(None, None, f"tensors have different batch sizes ({desc})"))
        if errors:
            raise InvalidInput(errors)
        # Names the core does not know (and missing ones) are reported by the coercer, with the same words as v1.
        return columns

    def _rows(self, t: dict[str, Any]) -> list[list[Any]]:
        errors: list[FieldError] = []
        framed = self._frame(t, errors)
        if framed is None:
            raise InvalidInput(errors)
        shape, flat = framed
        width = len(self.names)
        if len(shape) != 2 or shape[1] != width:
            raise InvalidInput(
                [
                    FieldError(
                        None,
                        self.rows_input,
                        f"shape {shape} must be [n, {width}]: one row per example, "
                        f"in this order: {', '.join(self.names)}",
                    )
                ]
            )
        return [flat[i * width : (i + 1) * width] for i in range(shape[0])]

    # --- responses and metadata ----------------------------------------------------------

    def response(self, outputs: np.ndarray, request_id: str | None) -> dict[str, Any]:
        """Model outputs -> an OIP v2 infer response."""
        m = self.service.artifacts.manifest
        out = np.asarray(outputs)
        return {
            "model_name": m.name,
            "model_version": m.version,
            "id": request_id or str(uuid.uuid4()),
            "outputs": [
                {
                    "name": str(m.outputs.get("name", "output_0")),
                    "shape": list(out.shape),
                    "datatype": oip_datatype(str(m.outputs.get("dtype", out.dtype.name))),
                    "data": out.reshape(-1).tolist(),
                }
            ],
        }

    def metadata(self) -> dict[str, Any]:
        """OIP v2 model metadata: one input tensor per raw feature, read from the manifest."""
        m = self.service.artifacts.manifest
        inputs = [
            {
                "name": f.name,
                "datatype": "BYTES" if isinstance(f, CategoricalFeature) else "FP64",
                "shape": [-1],
            }
            for f in self.features
        ]
        out_shape = [-1 if d is None else int(d) for d in m.outputs.get("shape", [None, 1])]
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": f"skewless_{self.service.runtime}",
            "inputs": inputs,
            "outputs": [
                {
                    "name": str(m.outputs.get("name", "output_0")),
                    "datatype": oip_datatype(str(m.outputs.get("dtype", "float32"))),
                    "shape": out_shape,
                }
            ],
            # The alternative layout: every feature in one tensor, as ordered rows.
            "parameters": {
                "rows_input": {"name": self.rows_input, "datatype": "BYTES", "shape": [-1, len(self.names)]},
                "feature_order": self.names,
            },
        }

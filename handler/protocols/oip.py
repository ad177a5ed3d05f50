"""Open Inference Protocol v2 bodies <-> the core's feature batches (no Keras, no AWS here).

A request carries one tensor per feature, named like it, with shape [n, *the feature's shape]
(a scalar feature also takes [n, 1], a feature of shape [1] also [n]) and a datatype of the
feature's kind: a numeric one (BOOL, UINT8..64, INT8..64, FP16/32/64) for numbers, BYTES for
strings. Values then go through the same coercion as a v1 request: a fraction into an int
input, 300 into UINT8 or an id outside an Embedding's range are 422s. A tabular model also takes
every feature in one tensor of ordered rows, named like the model's input (`features` for
churn): shape [n, number of features].
The answer has one output tensor per model output.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from handler.core.answer import jsonable
from handler.core.coerce import CoercedRequest
from handler.core.service import Service
from handler.core.signature import OIP_DTYPES, TensorSpec
from handler.core.value_rules import as_text, one_value
from handler.errors import BadRequest, FieldError, InvalidInput


def _flatten(data: Any) -> list[Any]:
    """OIP allows data row-major flattened or nested; the core wants it flat."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def _value_error(datatype: str, values: list[Any]) -> str | None:
    """A JSON value that cannot be of the declared datatype, as a reason (its position, never its value)."""
    for i, v in enumerate(values):
        if datatype == "BOOL" and not isinstance(v, bool):
            return f"data[{i}] is not true/false, but datatype BOOL holds true/false"
        if datatype.startswith(("INT", "UINT")) and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer())
        ):
            return f"data[{i}] is not an integer, but datatype {datatype} holds integers"
        if datatype.startswith("FP") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"data[{i}] is not a number, but datatype {datatype} holds numbers"
    return None


class V2Protocol:
    """Translates OIP v2 bodies for one model's signature."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.signature = service.artifacts.signature
        self.features = {f.name: f for f in self.signature.features}
        # Tabular models: every feature in one tensor of ordered rows, named like the model's input.
        self.rows_input = self.signature.inputs[0].name if self.signature.scalar_features else None
        if self.rows_input in self.features:
            self.rows_input = None

    # --- requests ------------------------------------------------------------------------

    def coerce(self, body: Mapping[str, Any]) -> CoercedRequest:
        """A parsed infer body -> coerced feature batches; raise InvalidInput naming each tensor."""
        tensors = body.get("inputs")
        if not isinstance(tensors, list) or not tensors or not all(isinstance(t, dict) for t in tensors):
            raise InvalidInput([FieldError(None, "inputs", "must be a non-empty array of tensor objects")])
        # A tensor without a name is named by its position, as a client would look for it.
        names = [t["name"] if isinstance(t.get("name"), str) else f"inputs[{i}]" for i, t in enumerate(tensors)]
        if self.rows_input is not None and self.rows_input in names:
            if len(tensors) != 1:
                others = ", ".join(n for n in names if n != self.rows_input)
                raise InvalidInput(
                    [
                        FieldError(
                            None,
                            self.rows_input,
                            f"send either this tensor alone or one per feature, not also {others}",
                        )
                    ]
                )
            return self.service.coercer.coerce({"instances": self._rows(tensors[0])})
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        batch: dict[str, int] = {}
        for t, name in zip(tensors, names, strict=True):
            if name in values or name in batch:
                errors.append(FieldError(None, name, "is sent twice"))
                continue
            spec = self.features.get(name)
            if spec is None:
                hint = f" (or one tensor '{self.rows_input}' of ordered rows)" if self.rows_input else ""
                errors.append(
                    FieldError(
                        None,
                        name,
                        f"is not an input of this model; send one tensor per input: {', '.join(self.features)}{hint}",
                    )
                )
                continue
            framed = self._tensor(t, spec, errors)
            if framed is not None:
                batch[name], values[name] = framed
        if len(set(batch.values())) > 1:
            desc = ", ".join(f"{k}={v}" for k, v in batch.items())
            errors.append(FieldError(None, None, f"tensors have different batch sizes ({desc})"))
        if errors:
            raise InvalidInput(errors)
        return self.service.coercer.coerce_tensors(values, next(iter(batch.values()), 0))

    def _frame(self, t: Mapping[str, Any], name: str, errors: list[FieldError]) -> tuple[list[int], list[Any]] | None:
        """Check a tensor's datatype, shape and data length; return (shape, flat data)."""
        before = len(errors)
        shape, datatype, data = t.get("shape"), t.get("datatype"), t.get("data")
        if datatype not in OIP_DTYPES:
            errors.append(FieldError(None, name, f"datatype {datatype!r} is not one of {', '.join(OIP_DTYPES)}"))
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            errors.append(FieldError(None, name, "shape must be a list of non-negative integers"))
            return None
        if isinstance(data, np.ndarray):  # binary tensor data: already of its datatype, flat
            flat: Any = data
        elif isinstance(data, list):
            flat = _flatten(data)
        else:
            errors.append(FieldError(None, name, "data must be an array"))
            return None
        if len(flat) != math.prod(shape):
            errors.append(
                FieldError(None, name, f"data has {len(flat)} values but shape {shape} needs {math.prod(shape)}")
            )
        elif isinstance(flat, list) and datatype in OIP_DTYPES and (reason := _value_error(str(datatype), flat)):
            errors.append(FieldError(None, name, reason))
        if datatype == "BYTES":
            # Decoded once, here: binary BYTES elements arrive as bytes, JSON ones as text; both mean the same text
            # (a category, or a number's digits in the one-tensor form), so every rule after sees one form.
            flat = [as_text(v) for v in flat]
        return (shape, flat) if len(errors) == before else None

    def _tensor(self, t: Mapping[str, Any], spec: TensorSpec, errors: list[FieldError]) -> tuple[int, Any] | None:
        """One feature's tensor -> (batch size, its values shaped [n, *shape]); add a reason if it does not fit."""
        framed = self._frame(t, spec.name, errors)
        if framed is None:
            return None
        shape, flat = framed
        datatype = str(t.get("datatype"))
        if (spec.kind == "string") != (datatype == "BYTES"):
            want = "BYTES" if spec.kind == "string" else f"{spec.oip_datatype} (or another numeric datatype)"
            errors.append(FieldError(None, spec.name, f"is {spec.describe()}: send datatype {want}, not {datatype}"))
            return None
        dims = shape[1:]
        fits = len(dims) == spec.rank and all(d is None or d == got for d, got in zip(spec.shape, dims, strict=True))
        # A scalar input takes [n, 1] too, and an input of shape [1] takes [n]: one value per example either way.
        if not shape or not (fits or (spec.rank == 0 and dims == [1]) or (one_value(spec) and not dims)):
            want = ", ".join(["n", *("any" if d is None else str(d) for d in spec.shape)])
            errors.append(
                FieldError(None, spec.name, f"shape {shape} must be [{want}]: the batch, then {spec.describe()}")
            )
            return None
        n = shape[0]
        per_example = [n, *spec.shape] if one_value(spec) else [n, *dims] if spec.rank else [n]
        if datatype == "BYTES":
            arr: Any = np.array(flat, dtype=object).reshape(per_example)
        else:
            arr = np.asarray(flat).reshape(per_example)
        return n, arr

    def _rows(self, t: Mapping[str, Any]) -> list[list[Any]]:
        errors: list[FieldError] = []
        name = str(self.rows_input)
        framed = self._frame(t, name, errors)
        if framed is None:
            raise InvalidInput(errors)
        shape, flat = framed
        width = len(self.features)
        if len(shape) != 2 or shape[1] != width:
            raise InvalidInput(
                [
                    FieldError(
                        None,
                        name,
                        f"shape {shape} must be [n, {width}]: one row per example, in this order: "
                        f"{', '.join(self.features)}",
                    )
                ]
            )
        return [flat[i * width : (i + 1) * width] for i in range(shape[0])]

    # --- responses and metadata ----------------------------------------------------------

    def response(
        self, outputs: Mapping[str, np.ndarray], body: Mapping[str, Any], inference_id: str | None = None
    ) -> tuple[dict[str, Any], set[str]]:
        """Model outputs -> an OIP v2 infer response, and the outputs the client asked to get as binary data.

        Its `id` is `inference_id` (the request's as its rows were named), else the request's own, else a new one.

        `outputs` in the request selects outputs (an unknown name is a 400); `binary_data` on a
        requested output, or `binary_data_output` in the request's parameters, asks for binary data.
        Each tensor keeps its array under "array" for the binary encoder; `data` holds it as JSON.
        """
        m = self.service.artifacts.manifest
        known = {spec.name: spec for spec in self.signature.outputs}
        requested = body.get("outputs")
        default_binary = bool((body.get("parameters") or {}).get("binary_data_output", False))
        if requested is None:
            chosen = [(spec, default_binary) for spec in self.signature.outputs]
        else:
            if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
                raise BadRequest("'outputs' must be an array of objects, each naming an output")
            unknown = [str(o.get("name")) for o in requested if o.get("name") not in known]
            if unknown:
                raise BadRequest(
                    f"output(s) {', '.join(unknown)} are not outputs of this model: it has {', '.join(known)}"
                )
            chosen = [
                (known[o["name"]], bool((o.get("parameters") or {}).get("binary_data", default_binary)))
                for o in requested
            ]
        tensors = []
        for spec, binary in chosen:
            arr = outputs[spec.name]
            tensor: dict[str, Any] = {"name": spec.name, "shape": list(arr.shape), "datatype": spec.oip_datatype}
            if not binary:
                tensor["data"] = jsonable(arr.reshape(-1))
            tensor["array"] = arr
            tensors.append(tensor)
        rid = body.get("id")
        answer = {
            "model_name": m.name,
            "model_version": m.version,
            "id": inference_id or (rid if isinstance(rid, str) else str(uuid.uuid4())),
            "outputs": tensors,
        }
        return answer, {spec.name for spec, binary in chosen if binary}

    def metadata(self) -> dict[str, Any]:
        """OIP v2 model metadata: one input tensor per feature, one output tensor per output."""
        m = self.service.artifacts.manifest

        def tensor(spec: TensorSpec) -> dict[str, Any]:
            return {"name": spec.name, "datatype": spec.oip_datatype, "shape": _dims(spec.shape)}

        body: dict[str, Any] = {
            "name": m.name,
            "versions": [m.version],
            "platform": f"skewless_{self.service.runtime}",
            "inputs": [tensor(f) for f in self.signature.features],
            "outputs": [tensor(o) for o in self.signature.outputs],
        }
        if self.rows_input is not None:
            # The alternative layout: every feature in one tensor, as ordered rows.
            body["parameters"] = {
                "rows_input": {"name": self.rows_input, "datatype": "BYTES", "shape": [-1, len(self.features)]},
                "feature_order": list(self.features),
            }
        return body


def without_arrays(answer: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of a response from `V2Protocol.response` (every tensor's data as JSON)."""
    return {**answer, "outputs": [{k: v for k, v in t.items() if k != "array"} for t in answer["outputs"]]}


def _dims(shape: Sequence[int | None]) -> list[int]:
    return [-1, *(-1 if d is None else d for d in shape)]

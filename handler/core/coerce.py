"""Request body (TF-Serving v1) -> raw columns of the training dtypes, or every reason it cannot be.

Accepted shapes, as TF Serving's REST API defines them:
- row format, `{"instances": [...]}`: each instance a dict of named features (any key order)
  or a list of values in the training column order;
- columnar format, `{"inputs": {...}}`: a dict of feature -> list of values (a batch) or
  feature -> scalar (a single example without the batch dimension); or `{"inputs": [...]}`
  holding one ordered example or a list of them.

Numeric features accept ints, floats and bools (as 0/1); numeric strings per policy.
Categorical features accept strings. Every problem is collected, not just the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from handler.errors import FieldError, InvalidInput
from handler.preprocessing import CategoricalFeature, NumericFeature, Preprocessor

RequestFormat = Literal["instances", "inputs"]
_ALLOWED_TOP_LEVEL = {"instances", "inputs", "signature_name"}


@dataclass(frozen=True)
class CoercePolicy:
    """What to do with inputs that are not plainly right. Read from settings."""

    numeric_strings: Literal["accept", "reject"] = "accept"
    non_finite: Literal["reject", "impute"] = "reject"
    unknown_features: Literal["reject", "ignore"] = "reject"
    max_batch_size: int = 1024


@dataclass(frozen=True)
class CoercedRequest:
    """Raw columns ready for `Preprocessor.transform`, and how to shape the answer."""

    columns: dict[str, np.ndarray]
    n: int
    format: RequestFormat
    batched: bool


class _Collector:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, instance: int | None, feature: str | None, reason: str) -> None:
        self.errors.append(FieldError(instance, feature, reason))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Coercer:
    """Turns v1 bodies into columns for one model's feature spec."""

    def __init__(self, preprocessor: Preprocessor, policy: CoercePolicy) -> None:
        self.pre = preprocessor
        self.policy = policy
        self.names = preprocessor.names
        self._known = set(self.names)

    # --- public --------------------------------------------------------------------------

    def coerce(self, body: Any) -> CoercedRequest:
        """Validate and convert a parsed JSON body; raise InvalidInput listing every problem."""
        if not isinstance(body, dict):
            raise InvalidInput([FieldError(None, None, f"the body must be a JSON object, got {_type_name(body)}")])
        extra = sorted(set(body) - _ALLOWED_TOP_LEVEL)
        has_inst, has_inp = "instances" in body, "inputs" in body
        if has_inst == has_inp:
            raise InvalidInput(
                [FieldError(None, None, "the body needs exactly one of 'instances' (rows) or 'inputs' (columns)")]
            )
        if extra:
            raise InvalidInput([FieldError(None, k, "unknown top-level key") for k in extra])
        if has_inst:
            return self._rows(body["instances"], "instances", batched=True, where="instances")
        return self._inputs(body["inputs"])

    def coerce_rows(
        self, rows: Sequence[Any], first_index: int = 0
    ) -> tuple[dict[str, np.ndarray], list[FieldError], list[int]]:
        """Coerce rows one by one, keeping the good ones: for files where bad rows are reported, not fatal.

        Returns (columns of the good rows, errors with instance = first_index + row position,
        positions of the good rows).
        """
        good: list[int] = []
        errors: list[FieldError] = []
        values: dict[str, list[Any]] = {n: [] for n in self.names}
        for pos, row in enumerate(rows):
            col = _Collector()
            converted = self._row_values(row, first_index + pos, col)
            if col.errors or converted is None:
                errors.extend(col.errors)
                continue
            good.append(pos)
            for name, v in zip(self.names, converted, strict=True):
                values[name].append(v)
        return self._to_arrays(values), errors, good

    # --- body shapes ---------------------------------------------------------------------

    def _inputs(self, inputs: Any) -> CoercedRequest:
        if isinstance(inputs, dict):
            return self._columns(inputs)
        if isinstance(inputs, list) and inputs and not any(isinstance(v, (list, dict)) for v in inputs):
            # One ordered example without the batch dimension.
            req = self._rows([inputs], "inputs", batched=False, where="inputs")
            return req
        return self._rows(inputs, "inputs", batched=True, where="inputs")

    def _rows(self, rows: Any, fmt: RequestFormat, batched: bool, where: str) -> CoercedRequest:
        if not isinstance(rows, list):
            raise InvalidInput([FieldError(None, where, f"must be an array of examples, got {_type_name(rows)}")])
        self._check_batch(len(rows), where)
        col = _Collector()
        values: dict[str, list[Any]] = {n: [] for n in self.names}
        for i, row in enumerate(rows):
            converted = self._row_values(row, i, col)
            if converted is not None:
                for name, v in zip(self.names, converted, strict=True):
                    values[name].append(v)
        if col.errors:
            raise InvalidInput(col.errors)
        return CoercedRequest(self._to_arrays(values), len(rows), fmt, batched)

    def _columns(self, cols: Mapping[str, Any]) -> CoercedRequest:
        col = _Collector()
        self._check_names(cols.keys(), None, col)
        present = [n for n in self.names if n in cols]
        scalars = [n for n in present if not isinstance(cols[n], list)]
        batched = not (present and len(scalars) == len(present))
        if batched and scalars:
            for name in scalars:
                col.add(
                    None,
                    name,
                    "mixes a scalar with batched (array) columns: send every column as an array, "
                    "or every one as a scalar",
                )
        lengths = {len(cols[n]) for n in present if isinstance(cols[n], list)}
        if len(lengths) > 1:
            desc = ", ".join(f"{n}={len(cols[n])}" for n in present if isinstance(cols[n], list))
            col.add(None, None, f"columns have different lengths ({desc})")
        if col.errors:
            raise InvalidInput(col.errors)
        n = lengths.pop() if batched else 1
        self._check_batch(n, "inputs")
        values: dict[str, list[Any]] = {}
        for f in self.pre.features:
            raw = cols[f.name] if batched else [cols[f.name]]
            values[f.name] = [self._value(f, v, i if batched else None, col) for i, v in enumerate(raw)]
        if col.errors:
            raise InvalidInput(col.errors)
        return CoercedRequest(self._to_arrays(values), n, "inputs", batched)

    # --- one example ---------------------------------------------------------------------

    def _row_values(self, row: Any, i: int, col: _Collector) -> list[Any] | None:
        before = len(col.errors)
        if isinstance(row, dict):
            self._check_names(row.keys(), i, col)
            out = [self._value(f, row[f.name], i, col) if f.name in row else None for f in self.pre.features]
        elif isinstance(row, list):
            if len(row) != len(self.names):
                col.add(
                    i,
                    None,
                    f"has {len(row)} values but the model takes {len(self.names)}, "
                    f"in this order: {', '.join(self.names)}",
                )
                return None
            out = [self._value(f, v, i, col) for f, v in zip(self.pre.features, row, strict=True)]
        else:
            col.add(i, None, f"must be an object of named features or an ordered array, got {_type_name(row)}")
            return None
        return out if len(col.errors) == before else None

    def _check_names(self, keys: Any, i: int | None, col: _Collector) -> None:
        for k in keys:
            if k not in self._known and self.policy.unknown_features == "reject":
                col.add(i, str(k), "is not a feature of this model")
        for n in self.names:
            if n not in keys:
                col.add(i, n, "is missing")

    def _value(self, f: NumericFeature | CategoricalFeature, v: Any, i: int | None, col: _Collector) -> Any:
        if isinstance(f, CategoricalFeature):
            if not isinstance(v, str):
                col.add(i, f.name, f"must be a string category, got {_type_name(v)}")
                return None
            if f.oov == "error" and f.index_of(v) < 0:
                # The value itself is not quoted: error answers and logs never carry the request's values.
                col.add(i, f.name, f"is not a known category; expected one of {', '.join(f.vocabulary)}")
                return None
            return v
        return self._number(f, v, i, col)

    def _number(self, f: NumericFeature, v: Any, i: int | None, col: _Collector) -> float | None:
        t = type(v)
        if t is float or t is int:
            try:
                x = float(v)
            except OverflowError:
                col.add(i, f.name, "is too large to be a number")
                return None
        elif t is bool:
            x = 1.0 if v else 0.0
        elif t is str:
            if self.policy.numeric_strings == "reject":
                col.add(
                    i, f.name, "must be a number, got a string (numeric strings are rejected by NUMERIC_STRINGS=reject)"
                )
                return None
            try:
                x = float(v.strip())
            except (ValueError, OverflowError):
                col.add(i, f.name, "must be a number, got a string that is not one")
                return None
        else:
            col.add(i, f.name, f"must be a number, got {_type_name(v)}")
            return None
        if not math.isfinite(x):
            if self.policy.non_finite == "impute":
                return f.fill_value
            col.add(i, f.name, "must be a finite number, got NaN or infinity")
            return None
        return x

    # --- helpers -------------------------------------------------------------------------

    def _check_batch(self, n: int, where: str) -> None:
        if n == 0:
            raise InvalidInput([FieldError(None, where, "is empty: send at least one example")])
        if n > self.policy.max_batch_size:
            raise InvalidInput(
                [
                    FieldError(
                        None,
                        where,
                        f"holds {n} examples, over MAX_BATCH_SIZE={self.policy.max_batch_size}: split the batch",
                    )
                ]
            )

    def _to_arrays(self, values: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for f in self.pre.features:
            if isinstance(f, NumericFeature):
                out[f.name] = np.asarray(values[f.name], dtype=np.float64)
            else:
                out[f.name] = np.asarray(values[f.name], dtype=object)
        return out

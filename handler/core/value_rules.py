"""The exact rules for one value of one input, with a reason for every value they refuse.

`values.to_batch` runs them on a batch that its vectorised path cannot take whole, to name every bad
example and the first few positions in each. Reasons name positions and kinds, never the values the
client sent. The rules:
- a fraction for an integer input is refused, never truncated; so is a number its dtype cannot
  hold (300 for uint8, 1e39 for float32) and an id outside the input's `index_range`, or a value
  outside its `vocabulary` (a lookup without an OOV index);
- NaN and Infinity are refused (or, with NON_FINITE=impute, replaced by the training mean where
  the export recorded one);
- booleans count as 0/1 for numbers; numeric strings are parsed unless NUMERIC_STRINGS=reject;
- string inputs take strings, or TF Serving's `{"b64": "..."}` for bytes, decoded first (`decoded`);
- nested lists must have the input's per-example shape at every depth, and a free axis is never empty;
- an input of shape [1] (Keras' `Input(shape=(1,))`, as FeatureSpace builds them) takes its one value
  bare too, as Keras and TF Serving's rows do: `54` is `[54]`. An array of another length is refused,
  saying the input takes one value (`one_value`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from handler.core.signature import TensorSpec, numpy_dtype

# Per example, the reasons listed before the rest are only counted.
MAX_REASONS = 3
Problems = dict[int, list[str]]  # example position -> reasons


@dataclass(frozen=True)
class ValuePolicy:
    """What to do with values that are not plainly right. Read from settings."""

    numeric_strings: Literal["accept", "reject"] = "accept"
    non_finite: Literal["reject", "impute"] = "reject"


def kind_of(value: Any) -> str:
    """The JSON kind of a value, for messages: never the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@functools.cache
def limits(spec: TensorSpec) -> tuple[float, float]:
    """The smallest and largest value the spec accepts (its dtype's range, narrowed by index_range).

    Python ints for integer dtypes: float(2**63 - 1) rounds up to 2**63, which int64 cannot hold.
    """
    dtype = numpy_dtype(spec.dtype)
    lo: float
    hi: float
    if spec.kind == "float":
        info = np.finfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        iinfo = np.iinfo(dtype)
        lo, hi = int(iinfo.min), int(iinfo.max)
    if spec.index_range is not None:
        lo, hi = max(lo, spec.index_range[0]), min(hi, spec.index_range[1] - 1)
    return lo, hi


def one_value(spec: TensorSpec) -> bool:
    """An input of shape [1]: one value per example, which a client may send bare (54) or in an array ([54])."""
    return spec.shape == (1,)


def is_bare(value: Any) -> bool:
    """A value that is no array (a number, a string, a {"b64": ...}): for `one_value` inputs, the value itself."""
    return not isinstance(value, (list, dict)) or _is_b64(value)


# --- the slow path: every value, to say what is wrong where ----------------------------------


def slow(spec: TensorSpec, examples: Sequence[Any], policy: ValuePolicy) -> tuple[np.ndarray, Problems]:
    if isinstance(examples, np.ndarray):
        examples = examples.tolist()  # numpy scalars -> Python values, which the rules below know
    problems: Problems = {}
    good: list[Any] = []
    good_at: list[int] = []
    example_shape: tuple[int, ...] | None = None
    for i, example in enumerate(examples):
        reasons: list[str] = []
        converted = _example(spec, example, policy, reasons)
        if reasons:
            problems[i] = _summarise(reasons)
            continue
        shape = np.shape(converted)
        if example_shape is None:
            example_shape = shape
        elif shape != example_shape:
            problems[i] = [
                f"has shape {list(shape)} but earlier examples have {list(example_shape)}: "
                f"examples in one request must have the same shape"
            ]
            continue
        good.append(converted)
        good_at.append(i)
    dtype = numpy_dtype(spec.dtype)
    fill_shape = example_shape or tuple(d or 0 for d in spec.shape)
    out = np.zeros((len(examples), *fill_shape), dtype=dtype)
    if spec.kind == "string":
        out[...] = ""
    if good:
        out[good_at] = np.array(good, dtype=dtype)
    return out, problems


def _summarise(reasons: list[str]) -> list[str]:
    if len(reasons) <= MAX_REASONS:
        return reasons
    return [*reasons[:MAX_REASONS], f"and {len(reasons) - MAX_REASONS} more problem(s) like these"]


def _positions(spec: TensorSpec, value: Any, reasons: list[str]) -> Iterator[tuple[str, Any]]:
    """Walk a nested value along the spec's shape: yield (position, leaf); add a reason per shape problem."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    free: dict[int, int] = {}  # the length first seen on each free axis: an example is never ragged
    while stack:
        where, item, depth = stack.pop()
        if depth == spec.rank:
            if isinstance(item, list) or (isinstance(item, dict) and not _is_b64(item)):
                reasons.append(f"{_at(where)}must be a single value, got {kind_of(item)}")
                continue
            yield where, item
            continue
        want = spec.shape[depth]
        if not isinstance(item, list):
            dims = "×".join("n" if d is None else str(d) for d in spec.shape[depth:])
            reasons.append(f"{_at(where)}must be an array of {dims} values, got {kind_of(item)}")
            continue
        if want is None and not item:
            # A free axis (a sequence) of no values: recurrent layers and pooling have nothing to run over, and fail
            # inside the graph. The request is what is wrong, so it is refused here, naming it.
            reasons.append(f"{_at(where)}has no entries on axis {depth + 1}: a sequence needs at least one value")
            continue
        if want is None:
            want = free.setdefault(depth, len(item))
        if depth == 0 and one_value(spec) and len(item) != 1:
            reasons.append(f"has {len(item)} values but takes one per example: send it bare or in an array of one")
            continue
        if len(item) != want:
            reasons.append(f"{_at(where)}has {len(item)} entries on axis {depth + 1}, expected {want}")
            continue
        stack.extend((f"{where}[{j}]", child, depth + 1) for j, child in reversed(list(enumerate(item))))


def _at(where: str) -> str:
    """`[3][1] ` before a reason about a position inside the example; nothing for the example itself."""
    return f"{where} " if where else ""


def _example(spec: TensorSpec, value: Any, policy: ValuePolicy, reasons: list[str]) -> Any:
    """One example -> a nested list of converted leaves (or a scalar); reasons collect every problem."""
    if one_value(spec) and is_bare(value):  # its one value, sent bare: judged as itself, given its axis
        leaf = _leaf(spec, value, policy, reasons, "")
        return None if reasons else np.array([leaf], dtype=numpy_dtype(spec.dtype))
    leaves = [(where, _leaf(spec, leaf, policy, reasons, where)) for where, leaf in _positions(spec, value, reasons)]
    if reasons:
        return None
    if spec.rank == 0:
        return leaves[0][1]
    flat = [v for _, v in leaves]
    return np.array(flat, dtype=numpy_dtype(spec.dtype)).reshape(np.shape(_shape_of(value, spec.rank)))


def _shape_of(value: Any, rank: int) -> np.ndarray:
    dims = []
    item = value
    for _ in range(rank):
        dims.append(len(item))
        item = item[0] if item else None
    return np.empty(dims, dtype=np.int8)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _leaf(spec: TensorSpec, v: Any, policy: ValuePolicy, reasons: list[str], where: str) -> Any:
    at = f"{where} " if where else ""
    if spec.kind == "string":
        return _string(spec, v, reasons, at)
    if spec.kind == "bool":
        if isinstance(v, bool) or (type(v) is int and v in (0, 1)):
            return bool(v)
        reasons.append(f"{at}must be true or false, got {kind_of(v)}")
        return None
    x = _number(v, policy, reasons, at)
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):  # an int is finite, however long (math.isfinite would overflow)
        if policy.non_finite == "impute" and spec.fill_value is not None:
            return spec.fill_value
        reasons.append(f"{at}must be a finite number, got NaN or infinity")
        return None
    if spec.kind == "int":
        if isinstance(x, float) and not x.is_integer():
            reasons.append(f"{at}must be an integer for {spec.dtype}, got a fraction")
            return None
        x = int(x)
    lo, hi = limits(spec)
    if spec.vocabulary is not None and x not in spec.vocabulary:
        reasons.append(f"{at}is not a value this input knows; expected {_known(spec)}")
        return None
    if not lo <= x <= hi:
        if spec.index_range is not None:
            reasons.append(f"{at}is an id outside this input's range {spec.index_range[0]}..{spec.index_range[1] - 1}")
        elif spec.kind == "float":
            reasons.append(f"{at}is too large for {spec.dtype} (at most ±{hi:.3g})")
        else:
            reasons.append(f"{at}is outside {spec.dtype}'s range {int(lo)}..{int(hi)}")
        return None
    return x


def _number(v: Any, policy: ValuePolicy, reasons: list[str], at: str) -> float | int | None:
    t = type(v)
    if t is int:
        return v  # kept exact: int64 ids above 2**53 must not pass through a float
    if t is float:
        return v
    if t is bool:
        return int(v)
    if t is str:
        if policy.numeric_strings == "reject":
            reasons.append(f"{at}must be a number, got a string (NUMERIC_STRINGS=reject)")
            return None
        text = v.strip()
        try:
            return int(text) if text.lstrip("+-").isdigit() else float(text)
        except (ValueError, OverflowError):
            reasons.append(f"{at}must be a number, got a string that is not one")
            return None
    reasons.append(f"{at}must be a number, got {kind_of(v)}")
    return None


def decoded(v: Any) -> Any:
    """A string value as every wire form means it: `{"b64": ...}` and bytes become their text where it is UTF-8.

    One value, one answer: a category sent as "one_year", as {"b64": "b25lX3llYXI="} or as OIP BYTES is
    the same category, so it is decoded once, here, before any rule (the vocabulary) looks at it. Bytes
    that are not UTF-8 stay bytes (an image's bytes): they are no text category. Raises ValueError for a
    "b64" value that is not valid base64.
    """
    if _is_b64(v):
        try:
            v = base64.b64decode(v["b64"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ValueError("not valid base64") from None
    return as_text(v)


def as_text(v: Any) -> Any:
    """Bytes as their text where they are UTF-8 (as a JSON string would carry them); anything else as it is."""
    if type(v) is bytes:
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    return v


def _string(spec: TensorSpec, v: Any, reasons: list[str], at: str) -> str | bytes | None:
    try:
        v = decoded(v)
    except ValueError:
        reasons.append(f'{at}has a "b64" value that is not valid base64')
        return None
    if isinstance(v, (str, bytes)):
        if spec.vocabulary is not None and v not in spec.vocabulary:
            reasons.append(f"{at}is not a known category; expected {_known(spec)}")
            return None
        return v
    reasons.append(f'{at}must be a string (or {{"b64": ...}} for bytes), got {kind_of(v)}')
    return None


# A vocabulary is listed in a reason up to this many values; a longer one is counted, with its first few.
_LISTED = 20


def _known(spec: TensorSpec) -> str:
    """The values a vocabulary takes, for a reason: all of them when few, else how many and the first few."""
    values = sorted(spec.vocabulary or (), key=lambda v: (str(type(v)), v))
    if len(values) <= _LISTED:
        return "one of " + ", ".join(map(str, values))
    return f"one of the {len(values)} values it was trained on (such as {', '.join(map(str, values[:5]))})"

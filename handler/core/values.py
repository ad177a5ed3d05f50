"""JSON values for one input, one per example -> a numpy batch of the input's dtype and shape.

The rules are exact, because a silent guess is a wrong answer (`value_rules.py` states them, value by
value, with a reason for each refusal). The common case runs as a few numpy calls over the whole batch
(here); only a batch that fails them is walked value by value, to name every bad example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np

from handler.core.signature import TensorSpec, numpy_dtype
from handler.core.value_rules import Problems, ValuePolicy, limits, one_value, slow

_EXACT_INT = 2.0**53  # above this a float64 no longer holds every integer
_STR = frozenset((str,))


# A text column as a columnar reader holds it: (codes, levels), the column being levels[codes]. Preprocessing looks
# each level up in its vocabulary once, not each row: those lookups were most of its time for a million CSV rows.
Coded = tuple[np.ndarray, np.ndarray]


def to_batch(spec: TensorSpec, examples: Sequence[Any], policy: ValuePolicy) -> tuple[np.ndarray, Problems]:
    """`examples` (one JSON value each) -> an array [n, *shape] of the spec's dtype, and the bad examples.

    Bad examples hold zeros in the array: the caller drops them or refuses the request.
    """
    fast = _fast(spec, examples, policy)
    if fast is not None:
        return fast, {}
    return slow(spec, examples, policy)


# --- the fast path: the whole batch at once ------------------------------------------------


def _shape_fits(spec: TensorSpec, shape: tuple[int, ...], n: int) -> bool:
    if len(shape) != spec.rank + 1 or shape[0] != n:
        return False
    return all(got > 0 if want is None else want == got for want, got in zip(spec.shape, shape[1:], strict=True))


# Up to this many scalars, checking each in Python is cheaper than numpy's fixed cost per call.
SMALL_BATCH = 64


def _small_numbers(spec: TensorSpec, examples: Sequence[Any]) -> np.ndarray | None:
    """A few plain numbers for a scalar numeric feature (the one-example hot path), or None to look closer."""
    lo, hi = limits(spec)
    if not _plain_numbers(examples, lo, hi, spec.kind == "int"):
        return None
    return np.array(examples, dtype=numpy_dtype(spec.dtype))


def _plain_numbers(examples: Sequence[Any], lo: float, hi: float, integral: bool) -> bool:
    """Every value a plain int or float within [lo, hi], and whole when `integral`."""
    for v in examples:
        t = type(v)
        if t is float:
            if not lo <= v <= hi or (integral and not v.is_integer()):  # NaN fails the comparison too
                return False
        elif t is not int or not lo <= v <= hi:
            return False
    return True


QuickBatch = Callable[[list[Any]], "np.ndarray | None"]


def quick_batch(spec: TensorSpec) -> QuickBatch | None:
    """For a scalar number or string input, `to_batch`'s fast path for a few plainly right values, set up once.

    The function it returns builds the batch from a list of up to SMALL_BATCH values, or answers None when
    a value needs a closer look (then `to_batch` decides, exactly as without it). None for other inputs.
    """
    if spec.rank != 0:
        return None
    dtype = numpy_dtype(spec.dtype)
    if spec.kind in ("float", "int"):
        lo, hi = limits(spec)
        integral = spec.kind == "int"
        known = spec.vocabulary

        def numbers(examples: list[Any]) -> np.ndarray | None:
            if not _plain_numbers(examples, lo, hi, integral) or (known is not None and not known.issuperset(examples)):
                return None
            return np.array(examples, dtype=dtype)

        return numbers
    if spec.kind == "string":
        vocabulary = spec.vocabulary

        def strings(examples: list[Any]) -> np.ndarray | None:
            for v in examples:
                if type(v) is not str:
                    return None
            if vocabulary is not None and not vocabulary.issuperset(examples):
                return None
            return np.array(examples, dtype=object)

        return strings
    return None


def _fast(spec: TensorSpec, examples: Sequence[Any], policy: ValuePolicy) -> np.ndarray | None:
    """The batch as an array if every value is plainly right, else None (the slow path explains why)."""
    n = len(examples)
    if spec.rank == 0 and n <= SMALL_BATCH and spec.kind in ("float", "int") and isinstance(examples, list):
        small = _small_numbers(spec, examples)
        if small is not None and (spec.vocabulary is None or spec.vocabulary.issuperset(small.tolist())):
            return small
    if spec.kind == "string":
        if isinstance(examples, np.ndarray) and examples.dtype.kind in "US":
            examples = examples.astype(str).astype(object)  # numpy text -> Python str, as JSON gives
        if spec.rank == 0:
            if not _STR.issuperset(map(type, examples)):  # every value a str, the types compared in C
                return None
            arr = np.array(examples, dtype=object)
        else:
            try:
                arr = _with_axis(spec, np.array(examples, dtype=object), n)
            except ValueError:
                return None
            if not _shape_fits(spec, arr.shape, n) or not all(type(v) is str for v in arr.flat):
                return None
        if spec.vocabulary is not None and not spec.vocabulary.issuperset(arr.flat):
            return None
        return arr
    if spec.dtype == "uint8" and type(examples) is list:
        exact = _uint8_exact(spec, examples)
        if exact is not None:
            return exact
    try:
        arr = _with_axis(spec, np.asarray(examples), n)
    except (ValueError, OverflowError):
        return None
    if not _shape_fits(spec, arr.shape, n):
        return None
    kind = arr.dtype.kind
    if kind == "U":
        if policy.numeric_strings == "reject" or spec.kind == "bool":
            return None
        try:
            arr = np.char.strip(arr).astype(np.float64)
        except ValueError:
            return None
        kind = "f"
    if kind not in "biuf":
        return None
    if spec.kind == "bool":
        if kind == "b":
            return arr
        if kind in "iu" and ((arr == 0) | (arr == 1)).all():
            return arr.astype(bool)
        return None
    if kind == "f":
        if not np.isfinite(arr).all():
            return None
        if spec.kind == "int" and not _exact_integers(arr):
            return None
    if arr.size and not _in_range(spec, arr):
        return None
    arr = arr.astype(numpy_dtype(spec.dtype), copy=False)
    if spec.vocabulary is not None and not spec.vocabulary.issuperset(np.unique(arr).tolist()):
        return None
    return arr


def _with_axis(spec: TensorSpec, arr: np.ndarray, n: int) -> np.ndarray:
    """A batch of bare values for an input of shape [1] ([54, 60]) given its axis ([[54], [60]]), as Keras does."""
    return arr.reshape(n, 1) if one_value(spec) and arr.shape == (n,) else arr


def _exact_integers(arr: np.ndarray) -> bool:
    """Every value whole and within 2**53 (compared in float64: 2**53 overflows a float16 array's own dtype)."""
    return bool((arr == np.floor(arr)).all() and (np.abs(arr, dtype=np.float64) <= _EXACT_INT).all())


def _uint8_exact(spec: TensorSpec, examples: list[Any]) -> np.ndarray | None:
    """A uint8 batch (images) when every value is a plain int in range at exactly the spec's shape, else None.

    numpy's conversion of nested lists costs about as much as parsing their JSON. Here each level's
    lengths are read in C and the values packed by `bytearray`, which takes only ints (bools among
    them, as numpy does) in 0..255. Anything else, a number where an array belongs (no len), a string
    or an object where an array belongs (their characters or keys reach `bytearray`), is left to the
    general path, which decides as always.
    """
    if not examples:
        return None
    shape = [len(examples)]
    level: Any = examples
    try:
        for want in spec.shape:
            if want == 1:  # one value each (an image's single channel): unpacking checks the length too
                shape.append(1)
                level = [value for [value] in level]
                continue
            lengths = set(map(len, level))
            if len(lengths) != 1 or (want is not None and want not in lengths) or 0 in lengths:
                return None
            shape.append(lengths.pop())
            level = list(chain.from_iterable(level))
        data = bytearray(level)
    except (TypeError, ValueError):
        return None
    arr = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    lo, hi = limits(spec)
    if (lo > 0 or hi < 255) and not (arr.min() >= lo and arr.max() <= hi):
        return None
    return arr


def _in_range(spec: TensorSpec, arr: np.ndarray) -> bool:
    if spec.dtype == "float64" and spec.index_range is None:
        return True  # any finite float64 fits
    lo, hi = limits(spec)
    return bool(arr.min().item() >= lo and arr.max().item() <= hi)  # as Python numbers: no cast to a float16

"""Arrow columns (a CSV block, a Parquet row group) -> a Chunk of coerced features, with every bad row named.

The values are judged by the core's own rules (`values.to_batch`, what `Coercer` runs per
feature), only in fewer, larger steps:
- a numeric column is cast by `pyarrow.compute` (text to float64, or to int64 for an integer
  input, so ids above 2**53 stay exact). Where the cast fails, every cell of that column goes
  to `to_batch` one by one, which names each bad row. Cells that parse to NaN or infinity are
  judged alone, and the rest of the column goes through `to_batch`'s vectorised path;
- a text column is dictionary-encoded, and each distinct value is judged once: a strict
  vocabulary is checked per category, not per row (3 categories for a million rows);
- anything else (nulls, lists of the wrong length, a type the input does not take) goes to
  `to_batch` as Python values, which says what is wrong.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec, numpy_dtype
from handler.core.value_rules import Problems, ValuePolicy
from handler.core.values import Coded, to_batch
from handler.errors import FieldError
from handler.formats.base import Chunk, RowError, Sink, row_order


def batch_chunk(
    batch: pa.RecordBatch,
    rows: np.ndarray,
    coercer: Coercer,
    lines: np.ndarray | None = None,
    errors: Sequence[RowError] = (),
) -> Chunk:
    """One batch whose columns are named by feature -> a Chunk; rows refused join `errors`, in row order."""
    policy = coercer.policy
    columns: dict[str, np.ndarray] = {}
    coded: dict[str, Coded] = {}
    bad: dict[int, list[FieldError]] = {}
    for spec in coercer.features:
        col = batch.column(spec.name)
        if spec.rank == 0 and spec.kind == "string" and _is_text(col.type):
            arr, problems, coded[spec.name] = _by_distinct_value(spec, col, policy)
        else:
            arr, problems = column_values(spec, col, policy)
        columns[spec.name] = arr
        for i, reasons in problems.items():
            bad.setdefault(i, []).extend(FieldError(i, spec.name, r) for r in reasons)
    if not bad:
        return Chunk(columns, rows, lines, sorted(errors, key=row_order), coded)
    keep = np.ones(len(rows), dtype=bool)
    keep[list(bad)] = False
    refused = [RowError(int(rows[i]), None if lines is None else int(lines[i]), bad[i]) for i in sorted(bad)]
    return Chunk(
        {name: arr[keep] for name, arr in columns.items()},
        rows[keep],
        None if lines is None else lines[keep],
        sorted([*errors, *refused], key=row_order),
        {name: (codes[keep], levels) for name, (codes, levels) in coded.items()},
    )


def column_values(spec: TensorSpec, col: pa.Array, policy: ValuePolicy) -> tuple[np.ndarray, Problems]:
    """One Arrow column -> (an array [n, *shape] of the input's dtype, the bad positions and why), as to_batch."""
    kind = col.type
    if tuple(spec.shape) == (1,) and not _is_list(kind):
        # One value per row (a CSV cell, a scalar Parquet column) for an input of shape [1], as Keras'
        # Input((1,)) gives: judged as a scalar, then given its axis.
        values, problems = column_values(replace(spec, shape=()), col, policy)
        return values.reshape(len(values), 1), problems
    if spec.rank > 0:
        flat = _fixed_shape(spec, col)
        return _judge(spec, flat if flat is not None else col.to_pylist(), policy)
    if spec.kind == "string" and _is_text(kind):
        values, problems, _ = _by_distinct_value(spec, col, policy)
        return values, problems
    if spec.kind in ("float", "int"):
        if pa.types.is_decimal(kind):
            col, kind = pc.cast(col, pa.float64()), pa.float64()
        if (_is_text(kind) and policy.numeric_strings == "accept") or _is_number(kind):
            return _numbers(spec, col, policy)
    if spec.kind == "bool" and (pa.types.is_boolean(kind) or pa.types.is_integer(kind)) and not col.null_count:
        return _judge(spec, col.to_numpy(zero_copy_only=False), policy)
    if spec.kind == "bool" and _is_text(kind):
        cells = (_boolean_cells(col) or col).to_pylist()
        return _judge(spec, [_DIGIT.get(c, c) for c in cells], policy)
    return _judge(spec, col.to_pylist(), policy)


# The cells pyarrow's CSV reader takes as booleans by default (ConvertOptions' true_values and false_values). A CSV
# that pandas wrote has True/False for a bool column: read as 1/0, as a JSON true/false is, for a bool or a number.
TRUE_CELLS = ("1", "True", "TRUE", "true")
FALSE_CELLS = ("0", "False", "FALSE", "false")
_TRUE_WORDS, _FALSE_WORDS = pa.array(TRUE_CELLS[1:]), pa.array(FALSE_CELLS[1:])  # "1" and "0" are digits already
_DIGIT = {"1": 1, "0": 0}


def _boolean_cells(col: pa.Array) -> pa.Array | None:
    """A text column with its true/false words as "1" and "0" (other cells as they are); None if it has none."""
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    true, false = pc.is_in(col, value_set=_TRUE_WORDS), pc.is_in(col, value_set=_FALSE_WORDS)
    if not (pc.any(true).as_py() or pc.any(false).as_py()):
        return None
    return pc.if_else(true, "1", pc.if_else(false, "0", col))


def _judge(spec: TensorSpec, values: Any, policy: ValuePolicy) -> tuple[np.ndarray, Problems]:
    """`values.to_batch`, which takes a list or a numpy array alike (an array is its fast case)."""
    return to_batch(spec, values, policy)


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def _numbers(spec: TensorSpec, col: pa.Array, policy: ValuePolicy) -> tuple[np.ndarray, Problems]:
    """A numeric input from text or number cells: cast in C++, the coercer's rules on the result."""
    if col.null_count:
        return _judge(spec, col.to_pylist(), policy)  # a null is "must be a number, got null", per row
    if _is_text(col.type):
        target = pa.int64() if spec.kind == "int" else pa.float64()
        try:
            values = pc.cast(col, target).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            digits = _boolean_cells(col)  # only now: a column of numbers never pays for the look
            if digits is not None:  # it has no true/false word left: this recursion ends
                return _numbers(spec, digits, policy)
            # Some cell is no number pyarrow reads (" 7", "", "1_000"): the coercer judges each cell of the column,
            # and accepts what it accepts (it strips spaces) and names the rest.
            return _judge(spec, col.to_pylist(), policy)
    else:
        values = col.to_numpy(zero_copy_only=False)
    if values.dtype.kind != "f":
        return _judge(spec, values, policy)
    suspect = ~np.isfinite(values)
    if not suspect.any():
        return _judge(spec, values, policy)
    # NaN and infinity (rare) are judged alone from their own cells, so they never send the column to the slow path.
    where = np.flatnonzero(suspect)
    clean, clean_problems = _judge(spec, values[~suspect], policy)
    odd, odd_problems = _judge(spec, col.take(pa.array(where)).to_pylist(), policy)
    out = np.empty((len(values), *clean.shape[1:]), dtype=clean.dtype)
    fine = np.flatnonzero(~suspect)
    out[fine] = clean
    out[where] = odd.astype(clean.dtype, copy=False)
    problems = {int(fine[i]): r for i, r in clean_problems.items()}
    problems.update({int(where[i]): r for i, r in odd_problems.items()})
    return out, problems


def _by_distinct_value(spec: TensorSpec, col: pa.Array, policy: ValuePolicy) -> tuple[np.ndarray, Problems, Coded]:
    """A text input: each distinct value judged once, then every row takes its value's verdict.

    Also returns the column as (codes, levels), the judged distinct values: preprocessing looks levels up once each.
    """
    encoded = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    distinct = encoded.dictionary.to_pylist()
    codes = encoded.indices
    if codes.null_count:  # a null cell: judged as the value None ("must be a string ..., got null")
        codes = pc.fill_null(codes, len(distinct))
        distinct.append(None)
    codes_np = codes.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
    judged, problems = _judge(spec, distinct, policy)
    values = judged[codes_np]
    if not problems:
        return values, {}, (codes_np, judged)
    bad_codes = np.fromiter(problems, dtype=np.intp, count=len(problems))
    positions = np.flatnonzero(np.isin(codes_np, bad_codes))
    return values, {int(i): problems[int(codes_np[i])] for i in positions}, (codes_np, judged)


def _fixed_shape(spec: TensorSpec, col: pa.Array) -> np.ndarray | None:
    """A list column whose every row has the input's fixed shape, as one numpy array; None to judge row by row."""
    if any(d is None for d in spec.shape):
        return None  # a free axis: the coercer checks that examples agree with each other
    values: Any = col
    for dim in spec.shape:
        if not _is_list(values.type):
            return None
        if values.null_count:
            return None
        lengths = pc.list_value_length(values)
        if len(lengths) and (pc.min_max(lengths)["min"].as_py() != dim or pc.min_max(lengths)["max"].as_py() != dim):
            return None
        values = pc.list_flatten(values)
    if values.null_count or not (_is_number(values.type) or _is_text(values.type)):
        return None
    flat = values.to_numpy(zero_copy_only=False)
    if spec.kind != "string" and flat.dtype == object:
        return None
    return flat.reshape(len(col), *(int(d) for d in spec.shape))  # type: ignore[arg-type]


def arrow_type(spec: TensorSpec) -> pa.DataType:
    """The Arrow type of one example of an output: a scalar for shape () or [1], fixed-size lists otherwise."""
    if spec.kind == "string":
        leaf: pa.DataType = pa.binary()
    else:
        leaf = pa.from_numpy_dtype(numpy_dtype(spec.dtype))
    shape = spec.shape if tuple(spec.shape) != (1,) else ()
    for dim in reversed(shape):
        leaf = pa.list_(leaf) if dim is None else pa.list_(leaf, int(dim))
    return leaf


# --- writing: answers into a pyarrow file writer (CSV, Parquet) -----------------------------------


class ToSink:
    """The file object pyarrow writes into (CSV, Parquet): bytes go on to the sink; close() leaves it open."""

    closed = False

    def __init__(self, sink: Sink) -> None:
        self.sink: Sink | None = sink
        self.position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if self.sink is not None:  # None once discarded: the footer of an abandoned file goes nowhere
            self.sink.write(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class ArrowPredictions(ABC):
    """A pyarrow file writer (CSV, Parquet) over the sink: `row` and the outputs' columns, a batch per chunk.

    A format says how to open its pyarrow writer and how to turn one chunk's outputs into its columns.
    """

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...], schema: pa.Schema) -> None:
        self.outputs, self.schema = outputs, schema
        self._to = ToSink(sink)
        self._closed = False
        self._writer = self._open(self._to)

    @abstractmethod
    def _open(self, to: ToSink) -> Any:
        """The format's pyarrow writer, writing into `to`."""

    @abstractmethod
    def _columns(self, outputs: dict[str, np.ndarray]) -> list[pa.Array]:
        """One chunk's outputs as the format's columns, after `row`."""

    def write(self, rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray]) -> None:
        columns = [pa.array(rows.astype(np.int64, copy=False)), *self._columns(outputs)]
        self._writer.write_batch(pa.record_batch(columns, schema=self.schema))

    def close(self) -> None:
        self._writer.close()
        self._closed = True

    def discard(self) -> None:
        if not self._closed:
            self._to.sink = None  # what closing writes (Parquet's footer) goes nowhere
            self.close()

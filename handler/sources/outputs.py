"""The predictions object of an S3 job, in the input's format (JSON Lines for .npy); written in chunks.

- CSV (for a CSV input): a header, then one record per answered row, in input order: `row`, then
  the outputs. An output of numbers with a fixed shape takes a column per value: named like the
  output for shape () or [1], `name[i]` (or `name[i][j]`, ...) otherwise. A text output of one
  value is a text column; any other output (text in a shape, a free axis) is one column holding
  the JSON value. Numbers are written as in JSON Lines (below), by pyarrow's CSV writer; text is
  quoted, header names too. About half the bytes of the same answers in JSON Lines.
- JSON Lines (for JSON Lines and .npy inputs): one line per answered row, in input order,
  `{"row": 0, "line": 2, "prediction": [0.22]}` ("line" only where the reader knows it: JSON
  Lines). The prediction is what TF Serving gives for one instance (an object keyed by output
  for several outputs). Numbers are written by pyarrow's compute kernels, not line by line in
  Python: float32 outputs are widened to float64 and written in their shortest exact form (the
  digits Python's repr writes, as an HTTP answer has them; `2` rather than `2.0`, `1e-7` rather
  than `1e-07`). Outputs of text, or of a shape with a free axis, go through `json.dumps`.
- Parquet (for a Parquet input): column `row` (int64) and one column per output named like it;
  an output of shape () or [1] is a scalar column, any other shape a fixed-size list column
  ([k], or lists of lists). One row group per chunk; the footer is written at `close`.

In every format the bytes go to a `MultipartWriter`, which makes the object visible only when the
whole job completes, and the content depends only on the input and the model, so a retried
event rewrites the same bytes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from handler.core.answer import jsonable, per_instance
from handler.core.signature import TensorSpec
from handler.sources.arrow_columns import arrow_type


class Sink(Protocol):
    """Where bytes go: `aws.MultipartWriter` (or a file, in tests)."""

    def write(self, data: bytes) -> None: ...


class PredictionWriter(Protocol):
    """Answers of one chunk at a time, then `close()` to finish the format (before the sink completes)."""

    content_type: str
    suffix: str

    def write(self, rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None:
        """After a failure: drop what is buffered, write nothing more (a no-op once closed)."""


# --- JSON Lines ----------------------------------------------------------------------------


class JsonLinesPredictions:
    """`{"row": ..., ["line": ...,] "prediction": ...}` per answered row."""

    content_type = "application/x-ndjson"
    suffix = ".jsonl"

    def __init__(self, sink: Sink, names: list[str]) -> None:
        self.sink, self.names = sink, names

    def write(self, rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray]) -> None:
        self.sink.write(prediction_lines(rows, lines, outputs, self.names))

    def close(self) -> None:
        return None

    def discard(self) -> None:
        return None


def prediction_lines(
    rows: np.ndarray, lines: np.ndarray | None, outputs: dict[str, np.ndarray], names: list[str]
) -> bytes:
    """One JSON line per answered row, joined into one bytes object."""
    predictions = _prediction_texts(outputs, names)
    if predictions is None:
        texts = [json.dumps(p, ensure_ascii=False) for p in per_instance(outputs, names)]
        predictions = [pa.array(texts, type=pa.string())]
    parts: list[Any] = ['{"row": ', _text(rows)]
    if lines is not None:
        parts += [', "line": ', _text(lines)]
    parts += [', "prediction": ', *predictions, "}\n"]
    return _joined(pc.binary_join_element_wise(*parts, ""))


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _joined(texts: pa.Array) -> bytes:
    """All strings of a string array back to back: its data buffer between the first and last offsets."""
    if not len(texts):
        return b""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
    data = texts.buffers()[2]
    return bytes(memoryview(data)[int(offsets[0]) : int(offsets[-1])]) if data is not None else b""


def _prediction_texts(outputs: dict[str, np.ndarray], names: list[str]) -> list[Any] | None:
    """Each row's prediction as JSON text, as pieces for one `binary_join_element_wise`; None: json.dumps."""
    parts: list[Any] = []
    for i, name in enumerate(names):
        pieces = _value_pieces(outputs[name])
        if pieces is None:
            return None
        if len(names) > 1:
            parts.append(("{" if i == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
        parts += pieces
    if len(names) > 1:
        parts.append("}")
    return parts


def _value_pieces(arr: np.ndarray) -> list[Any] | None:
    """One output's value per row as JSON text: numbers, in nested lists for an example's shape.

    Pieces (literal text and string arrays) rather than one array: the brackets of the common
    [n, 1] output join the line in the same kernel call as the rest of it.
    """
    kind = arr.dtype.kind
    if kind not in "biuf" or not arr.ndim or 0 in arr.shape[1:]:
        return None
    flat = arr.reshape(-1)
    if kind == "f":
        flat = flat.astype(np.float64)  # as an HTTP answer writes float32: its exact float64 value
        if not np.isfinite(flat).all():
            return None  # JSON has no NaN (answered rows have none; this is a guard)
    elif kind in "iu" and flat.dtype != np.uint64:
        flat = flat.astype(np.int64)
    texts = pc.cast(pa.array(flat), pa.string())  # bool -> "true"/"false", numbers -> shortest exact digits
    shape = arr.shape[1:]
    inner = shape[1:]
    for dim in reversed(inner):  # all axes but the first, innermost first: "[a, b]" per group of `dim`
        texts = pc.binary_join_element_wise("[", _join_groups(texts, dim), "]", "")
    if not shape:
        return [texts]
    return ["[", texts if shape[0] == 1 else _join_groups(texts, shape[0]), "]"]


def _join_groups(texts: pa.Array, size: int) -> pa.Array:
    """Every `size` consecutive strings joined with ", "."""
    if size == 1:
        return texts
    offsets = pa.array(np.arange(0, len(texts) + 1, size, dtype=np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ", ")


# --- CSV and Parquet, through pyarrow's writers --------------------------------------------


class _ToSink:
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


class _ArrowPredictions(ABC):
    """A pyarrow file writer (CSV, Parquet) over the sink: `row` and the outputs' columns, a batch per chunk.

    A format says how to open its pyarrow writer and how to turn one chunk's outputs into its columns.
    """

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...], schema: pa.Schema) -> None:
        self.outputs, self.schema = outputs, schema
        self._to = _ToSink(sink)
        self._closed = False
        self._writer = self._open(self._to)

    @abstractmethod
    def _open(self, to: _ToSink) -> Any:
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


# --- CSV -----------------------------------------------------------------------------------


class CsvPredictions(_ArrowPredictions):
    """`row` and the outputs' columns, with a header; a record per answered row."""

    content_type = "text/csv"
    suffix = ".csv"

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...]) -> None:
        fields = [pa.field("row", pa.int64())]
        for spec in outputs:
            fields += [pa.field(name, kind) for name, kind in csv_columns(spec)]
        super().__init__(sink, outputs, pa.schema(fields))

    def _open(self, to: _ToSink) -> Any:
        return pacsv.CSVWriter(to, self.schema)  # writes the header now

    def _columns(self, outputs: dict[str, np.ndarray]) -> list[pa.Array]:
        return [arr for spec in self.outputs for arr in _csv_values(spec, outputs[spec.name])]


def csv_columns(spec: TensorSpec) -> list[tuple[str, pa.DataType]]:
    """The CSV columns of one output: (name, Arrow type) for each."""
    if spec.kind == "string" or spec.size is None:
        return [(spec.name, pa.string())]  # the value's text (one string), or its JSON
    kind = {"float": pa.float64(), "bool": pa.bool_()}.get(spec.kind)
    if kind is None:
        kind = pa.uint64() if spec.dtype == "uint64" else pa.int64()
    if tuple(spec.shape) in ((), (1,)):
        return [(spec.name, kind)]
    dims = [int(d) for d in spec.shape if d is not None]
    return [(spec.name + "".join(f"[{i}]" for i in at), kind) for at in np.ndindex(*dims)]


def _csv_values(spec: TensorSpec, arr: np.ndarray) -> list[pa.Array]:
    """One output's batch as the arrays of its CSV columns (see `csv_columns`)."""
    n = len(arr)
    columns = csv_columns(spec)
    if pa.types.is_string(columns[0][1]):
        one_text = spec.kind == "string" and int(np.prod(arr.shape[1:], dtype=np.int64)) == 1
        values = jsonable(arr.reshape(n) if one_text else arr)
        if one_text:
            return [pa.array([v if isinstance(v, str) else json.dumps(v) for v in values], pa.string())]
        return [pa.array([json.dumps(v, ensure_ascii=False) for v in values], pa.string())]
    flat = arr.reshape(n, len(columns))
    if spec.kind == "float":
        flat = flat.astype(np.float64)  # as an HTTP answer writes float32: its exact float64 value
    return [pa.array(np.ascontiguousarray(flat[:, j]), kind) for j, (_, kind) in enumerate(columns)]


# --- Parquet -------------------------------------------------------------------------------


class ParquetPredictions(_ArrowPredictions):
    """`row` and one column per output, one row group per chunk."""

    content_type = "application/vnd.apache.parquet"
    suffix = ".parquet"

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...]) -> None:
        super().__init__(sink, outputs, pa.schema([("row", pa.int64()), *((o.name, arrow_type(o)) for o in outputs)]))

    def _open(self, to: _ToSink) -> Any:
        # No dictionary (model outputs seldom repeat), row numbers delta-encoded (a few bits per row).
        return pq.ParquetWriter(
            to, self.schema, compression="zstd", use_dictionary=False, column_encoding={"row": "DELTA_BINARY_PACKED"}
        )

    def _columns(self, outputs: dict[str, np.ndarray]) -> list[pa.Array]:
        return [_column(outputs[spec.name], self.schema.field(i).type) for i, spec in enumerate(self.outputs, 1)]


def _column(arr: np.ndarray, kind: pa.DataType) -> pa.Array:
    """One output's batch [n, *shape] as an Arrow column of `kind` (nested fixed-size lists for its shape)."""
    n = len(arr)
    if not (pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind)):
        if pa.types.is_binary(kind):
            return pa.array([v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(n).tolist()], kind)
        return pa.array(arr.reshape(n).astype(kind.to_pandas_dtype(), copy=False), type=kind)
    dims: list[pa.DataType] = []
    leaf: pa.DataType = kind
    while pa.types.is_list(leaf) or pa.types.is_fixed_size_list(leaf):
        dims.append(leaf)
        leaf = leaf.value_type
    values = _column(arr.reshape(-1), leaf)
    shape = arr.shape[1:]
    for level, size in zip(reversed(dims), reversed(shape), strict=True):
        if pa.types.is_fixed_size_list(level):
            values = pa.FixedSizeListArray.from_arrays(values, int(size))
        else:
            values = pa.ListArray.from_arrays(pa.array(np.arange(0, len(values) + 1, size, dtype=np.int32)), values)
    return values

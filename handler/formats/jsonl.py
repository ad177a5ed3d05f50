"""JSON Lines: one request row per line in, one answer per line out (also the answers of a .npy input).

In: each line a row as `instances` takes it (an object keyed by feature, a bare value for a
single-input model, an ordered array for a tabular one); blank lines are not rows; a line that is
not JSON, or that nests deeper than a request may (`core/json_depth.py`), is a row error with its
line number, and the rest of the file is read.

Out: one line per answered row, in input order, `{"row": 0, "line": 2, "prediction": [0.22]}`
("line" only where the reader knows it: JSON Lines). The prediction is what TF Serving gives for
one instance (an object keyed by output for several outputs). Numbers are written by pyarrow's
compute kernels, not line by line in Python: float32 outputs are widened to float64 and written in
their shortest exact form (the digits Python's repr writes, as an HTTP answer has them; `2` rather
than `2.0`, `1e-7` rather than `1e-07`). Outputs of text, or of a shape with a free axis, go through
`json.dumps`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from handler.core import json_depth
from handler.core.answer import per_instance
from handler.core.coerce import Coercer
from handler.core.signature import Signature
from handler.errors import FieldError
from handler.formats.base import Chunk, FileRejected, Format, ObjectSource, RowError, Sink


def jsonl_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """Stream JSON Lines (one request row per line: an object, a value, or an ordered array) into chunks."""
    text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="\n")
    batch: list[Any] = []
    lines: list[int] = []
    bad: dict[int, RowError] = {}  # position in batch -> a line that is not JSON
    row0 = 0
    try:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                batch.append(json_depth.loads(line))
            except ValueError as exc:
                bad[len(batch)] = RowError(row0 + len(batch), number, [FieldError(None, None, _not_a_row(exc))])
                batch.append(None)
            lines.append(number)
            if len(batch) >= chunk_rows:
                yield _json_chunk(batch, lines, bad, row0, coercer)
                row0 += len(batch)
                batch, lines, bad = [], [], {}
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file is not valid UTF-8 ({exc.reason})") from None
    if batch:
        yield _json_chunk(batch, lines, bad, row0, coercer)


def _not_a_row(exc: ValueError) -> str:
    if isinstance(exc, json_depth.TooDeep):  # the HTTP body's rule: refused as this row, never a crash of the file
        return f"is {exc}: a row is an object of features, a value, or an array of values"
    return f"not valid JSON: {exc}"


def _json_chunk(batch: list[Any], lines: list[int], bad: dict[int, RowError], row0: int, coercer: Coercer) -> Chunk:
    parsed = [i for i in range(len(batch)) if i not in bad]
    cols, field_errors, good = coercer.coerce_rows([batch[i] for i in parsed])
    errors = dict(bad)
    for e in field_errors:
        i = parsed[e.instance or 0]
        errors.setdefault(i, RowError(row0 + i, lines[i], [])).errors.append(e)
    kept = np.asarray([parsed[g] for g in good.tolist()], dtype=np.int64)
    return Chunk(
        columns=cols,
        rows=row0 + kept,
        lines=np.asarray(lines, dtype=np.int64)[kept],
        errors=[errors[i] for i in sorted(errors)],
    )


# --- the answers ----------------------------------------------------------------------------------


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


def read(source: ObjectSource, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    reader = source.stream()
    try:
        yield from jsonl_chunks(reader, coercer, chunk_rows)
    finally:
        reader.close()


def writer(sink: Sink, signature: Signature) -> JsonLinesPredictions:
    return JsonLinesPredictions(sink, signature.output_names)


FORMAT = Format(
    "jsonl", (".jsonl", ".ndjson"), read, writer, JsonLinesPredictions.suffix, JsonLinesPredictions.content_type
)

""".npy files -> chunks of coerced feature batches, streamed (the file is never held whole).

A model with one array input takes an array [n, *its shape]; a tabular model (scalar features) takes
[n, features] in feature order, numeric or (for string features) unicode. Object and structured dtypes
need pickle and are refused. The predictions are JSON Lines (`jsonl.py`): an array answer has no .npy
form that keeps row numbers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec
from handler.core.value_rules import one_value
from handler.formats import jsonl
from handler.formats.base import Chunk, FileRejected, Format, ObjectSource, coerced_chunk, text_coercer

# A .npy header is at most this long in practice (numpy itself warns above 10 kB).
NPY_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class NpyLayout:
    """How a .npy file's rows map to features: one array input ("tensor"), or a column per feature."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    offset: int
    tensor: TensorSpec | None

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * np.prod(self.shape[1:], dtype=np.int64))


def npy_layout(head: bytes, coercer: Coercer) -> NpyLayout:
    """Parse and check a .npy header against the signature, or FileRejected saying why not.

    A model with one array input takes an array [n, *its shape]; a tabular model (scalar features)
    takes [n, features] in feature order, numeric or (for string features) unicode.
    """
    fh = io.BytesIO(head)
    try:
        major, _ = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh, max_header_size=NPY_HEADER_BYTES)
    except (ValueError, EOFError) as exc:
        raise FileRejected(f"not a readable .npy file: {exc}") from None
    if dtype.hasobject or dtype.names is not None:
        raise FileRejected(
            f"the .npy array has dtype {dtype}, which needs pickle to load; pickle can run code, so it "
            f"is refused: save a numeric array, or a unicode one (np.array(rows, dtype=str))"
        )
    if fortran and shape and shape[0] > 1:
        raise FileRejected("the .npy array is in Fortran order; save a C-order array (np.ascontiguousarray)")
    if dtype.kind not in "biufUS":
        raise FileRejected(f"the .npy array has dtype {dtype}; use a numeric or a unicode dtype")
    features = coercer.features
    single = features[0] if len(features) == 1 else None
    if single is not None and single.rank > 0:
        want = ["n", *("any" if d is None else str(d) for d in single.shape)]
        fits = len(shape) == single.rank + 1 and all(
            d is None or d == s for d, s in zip(single.shape, shape[1:], strict=True)
        )
        if not fits and not (one_value(single) and len(shape) == 1):  # [n] for shape [1]: one value per row
            raise FileRejected(
                f"the .npy array has shape {list(shape)}; this model takes [{', '.join(want)}] ({single.name})"
            )
        return NpyLayout(tuple(shape), dtype, fh.tell(), single)
    if not coercer.signature.scalar_features:
        raise FileRejected(
            f"a .npy file holds one array, but this model takes {len(features)} inputs "
            f"({', '.join(coercer.names)}): send JSON Lines, one object per example"
        )
    width = len(features)
    if len(shape) != 2 or shape[1] != width:
        raise FileRejected(
            f"the .npy array has shape {list(shape)}; it must be 2-D with {width} columns in this order: "
            f"{', '.join(coercer.names)}"
        )
    text = [f.name for f in features if f.kind == "string"]
    if dtype.kind in "biuf" and text:
        raise FileRejected(
            f"the .npy array is numeric ({dtype}) but the model has string feature(s) {', '.join(text)}: save it "
            f"with a unicode dtype (np.array(rows, dtype=str)), or use CSV"
        )
    return NpyLayout((int(shape[0]), width), dtype, fh.tell(), None)


def npy_chunks(reader: BinaryIO, layout: NpyLayout, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """The array's rows in chunks, read straight from the stream (the file is never held whole)."""
    row0 = 0
    while row0 < layout.rows:
        want = min(chunk_rows, layout.rows - row0)
        data = reader.read(want * layout.row_bytes)
        if len(data) != want * layout.row_bytes:
            raise FileRejected(f"the .npy file is truncated: its header promises {layout.rows} rows")
        block = np.frombuffer(data, dtype=layout.dtype).reshape(want, *layout.shape[1:])
        if block.dtype.kind == "S":
            block = block.astype(str)
        rows = row0 + np.arange(want, dtype=np.int64)
        if layout.tensor is not None:
            values: dict[str, Any] = {layout.tensor.name: block}
        else:
            values = {name: block[:, j] for j, name in enumerate(coercer.names)}
        yield coerced_chunk(values, rows, None, coercer)
        row0 += want


def read(source: ObjectSource, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """The header first (its own small read), then the rows from the offset it gives."""
    coercer = text_coercer(coercer)  # a unicode array's numbers are text, as a CSV's cells
    head = source.head(NPY_HEADER_BYTES)
    if not head:
        return  # an empty object: no rows (and no header to refuse)
    layout = npy_layout(head, coercer)
    if layout.rows == 0:
        return
    reader = source.stream(layout.offset)
    try:
        yield from npy_chunks(reader, layout, coercer, chunk_rows)
    finally:
        reader.close()


FORMAT = Format("npy", (".npy",), read, jsonl.writer, jsonl.FORMAT.suffix, jsonl.FORMAT.content_type)

"""Parquet rows -> chunks of coerced feature batches, read a row group at a time (never the whole file).

A Parquet file holds one column per feature, named like it (a list column for an array input:
an image as nested lists [28][28][1]; a scalar column will do for an input of shape [1]); other
columns are refused unless UNKNOWN_FEATURES=ignore, as for a CSV header. The file is read
through any seekable file object; on S3 that is `s3_objects.RangeFile`, so pyarrow fetches the footer
and then only the feature columns' byte ranges, a span of row groups at a time (about 32 MiB of
them; with `pre_buffer`, one coalesced GET per span). Memory follows the span (and a row group
larger than it), not the file. `row` is the row's position in the file, from 0. Values keep
their Parquet types: numbers need no parsing, and a number stored as text follows NUMERIC_STRINGS
like any request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from handler.core.coerce import Coercer
from handler.core.signature import TensorSpec
from handler.formats.arrow import ArrowPredictions, ToSink, arrow_type, batch_chunk
from handler.formats.base import Chunk, FileRejected, Format, ObjectSource, Sink

# Row groups are read in spans of about this many bytes of feature columns: pyarrow's own limit for one
# coalesced read, a handful of GETs for a large file, and memory bounded by the span, not the file.
SPAN_BYTES = 32 << 20


def open_parquet(source: Any, coercer: Coercer | None = None) -> pq.ParquetFile:
    """A Parquet file's footer read; FileRejected if it is not Parquet.

    Text features are read as dictionaries: their values are decoded once per distinct value,
    and judged once each (`formats/arrow.py`), not once per row.
    """
    text = [f.name for f in coercer.features if f.kind == "string" and f.rank == 0] if coercer is not None else None
    try:
        return pq.ParquetFile(source, pre_buffer=True, read_dictionary=text or None)
    except pa.ArrowInvalid as exc:  # what pyarrow says of bytes that are not Parquet; a failed read is retried
        raise FileRejected(f"not a readable Parquet file: {exc}") from None


def check_parquet_columns(parquet: pq.ParquetFile, coercer: Coercer) -> None:
    """Every feature must be a top-level column; other columns are refused unless UNKNOWN_FEATURES=ignore."""
    names = list(parquet.schema_arrow.names)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileRejected(f"the Parquet file repeats column(s) {', '.join(dupes)}")
    missing = [f for f in coercer.names if f not in names]
    if missing:
        raise FileRejected(
            f"the Parquet file lacks feature column(s) {', '.join(missing)}; it must have one column per feature: "
            f"{', '.join(coercer.names)}"
        )
    unknown = [n for n in names if n not in coercer.names]
    if unknown and coercer.policy.unknown_features == "reject":
        raise FileRejected(
            f"the Parquet file has column(s) that are not features of this model: {', '.join(unknown)} "
            f"(drop them, or set UNKNOWN_FEATURES=ignore)"
        )


def parquet_chunks(parquet: pq.ParquetFile, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """The feature columns of each row group, in chunks of at most `chunk_rows` rows."""
    check_parquet_columns(parquet, coercer)
    row0 = 0
    try:
        # A few row groups at a time: with pre_buffer, pyarrow fetches the feature columns of every row group it
        # is asked for at once, so asking for all of them would hold the whole file; one group at a time would
        # make a GET per small group (tens of ms each on S3).
        for groups in _spans(parquet, list(coercer.names)):
            batches = parquet.iter_batches(
                batch_size=chunk_rows, row_groups=groups, columns=list(coercer.names), use_threads=False
            )
            for batch in batches:
                rows = row0 + np.arange(batch.num_rows, dtype=np.int64)
                yield batch_chunk(batch, rows, coercer)
                row0 += batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        if not _damaged(exc):
            raise  # the read failed (S3 unreachable, the object replaced): Lambda's retry reads it again
        raise FileRejected(f"the Parquet file cannot be read past row {row0}: {exc}") from None


def _spans(parquet: pq.ParquetFile, names: list[str]) -> list[list[int]]:
    """Consecutive row groups whose feature columns hold about SPAN_BYTES (compressed) together."""
    span_bytes = SPAN_BYTES
    meta = parquet.metadata
    wanted = {i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] in names}
    spans: list[list[int]] = [[]]
    size = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if spans[-1] and size >= span_bytes:
            spans.append([])
            size = 0
        spans[-1].append(g)
        size += sum(group.column(i).total_compressed_size for i in wanted)
    return [s for s in spans if s]


def _damaged(exc: Exception) -> bool:
    """pyarrow's own complaint about the bytes (a damaged page): exactly ArrowInvalid or OSError.

    A failure of the read itself reaches us as the file object raised it (botocore's errors, or a
    ConnectionError subclass of OSError from `s3_objects.RangeFile`), so retrying stays possible for those.
    """
    return type(exc) in (pa.ArrowInvalid, OSError)


# --- the answers ----------------------------------------------------------------------------------


class ParquetPredictions(ArrowPredictions):
    """`row` and one column per output, one row group per chunk."""

    content_type = "application/vnd.apache.parquet"
    suffix = ".parquet"

    def __init__(self, sink: Sink, outputs: tuple[TensorSpec, ...]) -> None:
        super().__init__(sink, outputs, pa.schema([("row", pa.int64()), *((o.name, arrow_type(o)) for o in outputs)]))

    def _open(self, to: ToSink) -> Any:
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


def read(source: ObjectSource, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
    """Random access: the footer first, then each span of row groups' feature columns."""
    file = source.seekable()
    if file.seek(0, 2) == 0:
        return  # an empty object: no rows (and no footer to refuse)
    file.seek(0)
    yield from parquet_chunks(open_parquet(file, coercer), coercer, chunk_rows)


FORMAT = Format(
    "parquet",
    (".parquet",),
    read,
    lambda sink, signature: ParquetPredictions(sink, signature.outputs),
    ParquetPredictions.suffix,
    ParquetPredictions.content_type,
)

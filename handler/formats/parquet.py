"""Parquet rows -> chunks of coerced feature batches, read a row group at a time (never the whole file).

A Parquet file holds one column per feature, named like it (a list column for an array input:
an image as nested lists [28][28][1]; a scalar column will do for an input of shape [1]); other
columns are refused unless UNKNOWN_FEATURES=ignore, as for a CSV header. The file is read
through any seekable file object; on S3 that is `s3_objects.RangeFile`, so pyarrow fetches the footer
and then only the feature columns' byte ranges, a span of row groups at a time (about 32 MiB of
them; with `pre_buffer`, one coalesced GET per span). Memory follows the span (and a row group
larger than it), not the file. `row` is the row's position in the file, from 0. Values keep
their Parquet types: numbers need no parsing, and a number stored as text follows NUMERIC_STRINGS
like any request. What the values take once decompressed is read from the footer before any of
them: a chunk of large rows holds fewer of them, and a row too large for any request refuses the
file (DECOMPRESSED_CHUNK_BYTES).
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
# What one chunk's feature values may take once decoded, by the footer: 8 times the S3 job's chunk budget
# (triggers/s3/chunks.CHUNK_BYTES, 8 MiB of coerced input; formats may not import triggers, a test holds them
# equal). Parquet's plain encoding of a valid value is at most a few times its coerced size (an int64 or a double
# stored for a uint8 or float32 input is 8 times; list offsets and levels add a little), so honest rows fit, and a
# chunk of larger rows is read in fewer rows. Reading takes about five times the decompressed bytes (one 200 MiB
# string took 1 GiB), so a chunk stays near 320 MiB. A single row over it is refused: it is ten times the largest
# HTTP request (MAX_BODY_BYTES, 6 MiB), and only a decompression bomb (10 KB of zstd for 200 MiB) gets there.
DECOMPRESSED_CHUNK_BYTES = 8 * (8 << 20)


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
    """The feature columns of each row group, in chunks of at most `chunk_rows` rows (fewer for large rows)."""
    check_parquet_columns(parquet, coercer)
    row_bytes = decompressed_row_bytes(parquet, list(coercer.names))  # refuses a bomb before anything is read
    row0 = 0
    try:
        # A few row groups at a time: with pre_buffer, pyarrow fetches the feature columns of every row group it
        # is asked for at once, so asking for all of them would hold the whole file; one group at a time would
        # make a GET per small group (tens of ms each on S3).
        for groups in _spans(parquet, list(coercer.names)):
            widest = max(row_bytes[g] for g in groups)
            per_chunk = max(1, min(chunk_rows, DECOMPRESSED_CHUNK_BYTES // max(1, widest)))
            batches = parquet.iter_batches(
                batch_size=per_chunk, row_groups=groups, columns=list(coercer.names), use_threads=False
            )
            for batch in batches:
                rows = row0 + np.arange(batch.num_rows, dtype=np.int64)
                yield batch_chunk(batch, rows, coercer)
                row0 += batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        if not _damaged(exc):
            raise  # the read failed (S3 unreachable, the object replaced): Lambda's retry reads it again
        raise FileRejected(f"the Parquet file cannot be read past row {row0}: {exc}") from None


def decompressed_row_bytes(parquet: pq.ParquetFile, names: list[str]) -> list[int]:
    """Per row group, what a row of its feature columns takes once decoded, as the footer says (the mean).

    Per column, the larger of its uncompressed size and its values' count times their width: "uncompressed"
    is still encoded, and a dictionary with run lengths holds 9 million equal doubles (72 MB) in 114 bytes.
    FileRejected, before any value is read, for a row group whose rows are over DECOMPRESSED_CHUNK_BYTES each:
    the read limit counts compressed bytes, and 10 KB of zstd decompress to 200 MiB. The footer is the writer's
    word: a footer that understates its pages, one huge value among very many small rows, or one long string
    repeated through a dictionary (in a list of strings; a text feature is read as a dictionary) is not caught.
    """
    meta = parquet.metadata
    columns = _feature_columns(meta, names)
    widths = {i: _value_width(meta.schema.column(i)) for i in columns}
    sizes: list[int] = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        rows = max(1, group.num_rows)
        by_column: dict[str, int] = {}
        for i, name in columns.items():
            column = group.column(i)
            decoded = max(column.total_uncompressed_size, column.num_values * widths[i])
            by_column[name] = by_column.get(name, 0) + decoded
        per_row = -(-sum(by_column.values()) // rows)
        if per_row > DECOMPRESSED_CHUNK_BYTES:
            widest = max(by_column, key=by_column.__getitem__)
            raise FileRejected(
                f"row group {g} of the Parquet file decompresses to {_mib(per_row)} of feature values a row "
                f"({group.num_rows} row(s); column {widest!r}: {_mib(by_column[widest])}), over the "
                f"{_mib(DECOMPRESSED_CHUNK_BYTES)} a row may take: no request is that large; send smaller values",
                feature=widest,
            )
        sizes.append(per_row)
    return sizes


# Bytes a value of each physical type takes once decoded (a byte array: its offset; its bytes are in the pages).
_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12, "BYTE_ARRAY": 4}


def _value_width(column: pq.ColumnSchema) -> int:
    if column.physical_type == "FIXED_LEN_BYTE_ARRAY":
        return max(1, int(column.length))
    return _WIDTHS.get(column.physical_type, 8)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _feature_columns(meta: pq.FileMetaData, names: list[str]) -> dict[int, str]:
    """The leaf columns (by index) that belong to a feature, with its name: a list column is one leaf of it."""
    found = {i: meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns)}
    return {i: name for i, name in found.items() if name in names}


def _spans(parquet: pq.ParquetFile, names: list[str]) -> list[list[int]]:
    """Consecutive row groups whose feature columns hold about SPAN_BYTES (compressed) together."""
    span_bytes = SPAN_BYTES
    meta = parquet.metadata
    wanted = set(_feature_columns(meta, names))
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

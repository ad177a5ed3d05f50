"""Gzipped text files (`.csv.gz`, `.jsonl.gz`, `.ndjson.gz`): the same reader over the decompressed stream.

The object is decompressed as it is read, never held whole, so memory stays flat as it does for the
plain file; its rows are numbered as in the plain file, and the answers are the same bytes. A file that
is not gzip, or whose gzip stream is cut or corrupt, is rejected with the reason. Parquet compresses
its own columns and .npy is read by ranges: theirs are refused with what to send instead.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, BinaryIO

from handler.core.coerce import Coercer
from handler.formats.base import Chunk, FileRejected, Format, ObjectSource

SUFFIX = ".gz"
# Formats whose bytes cannot be read as a stream: each one's reason, for a `.gz` of it.
NOT_GZIPPED = {
    ".parquet": "Parquet compresses its own columns (snappy, zstd): put the .parquet as it is",
    ".npy": "a .npy is read by byte ranges: put it uncompressed",
}


class _Gunzipped:
    """An object's decompressed bytes, as a reader reads a source (a stream from the start)."""

    def __init__(self, source: ObjectSource) -> None:
        self._source = source

    def stream(self, start: int = 0) -> BinaryIO:
        if start:
            raise FileRejected("a gzipped file is read from its start")
        unzipped = gzip.GzipFile(fileobj=self._source.stream(0), mode="rb")
        return io.BufferedReader(_Checked(unzipped), buffer_size=1 << 20)

    def seekable(self) -> BinaryIO:
        raise FileRejected("a gzipped file is read as a stream")

    def head(self, size: int) -> bytes:
        with self.stream() as f:
            return f.read(size)


class _Checked(io.RawIOBase):
    """A GzipFile whose failures (not gzip, cut short, corrupt) are the file's rejection, with the reason."""

    def __init__(self, raw: gzip.GzipFile) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._raw.readinto(buffer)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise FileRejected(f"the file is not valid gzip: {exc}") from None

    def close(self) -> None:
        self._raw.close()
        super().close()


def gzipped(fmt: Format) -> Format:
    """`fmt` for the gzipped form of its files: extensions `.csv.gz` and so on, the same writer."""

    def read(source: ObjectSource, coercer: Coercer, chunk_rows: int) -> Iterator[Chunk]:
        return fmt.read(_Gunzipped(source), coercer, chunk_rows)

    return replace(fmt, extensions=tuple(e + SUFFIX for e in fmt.extensions), read=read)


def refusal(key: str) -> str | None:
    """Why a gzipped file of a format that is not read gzipped is refused (None: not such a file)."""
    low = key.lower()
    if not low.endswith(SUFFIX):
        return None
    inner = low.removesuffix(SUFFIX)
    return next((f"{ext}{SUFFIX} is not read: {why}" for ext, why in NOT_GZIPPED.items() if inner.endswith(ext)), None)

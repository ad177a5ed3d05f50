"""The file formats by name and extension. A new format is a module with a `FORMAT` (its reader and writer) and
a line here; nothing else changes. CSV and JSON Lines are read gzipped too (`formats/gz.py`)."""

from __future__ import annotations

import posixpath

from handler.formats import csv, gz, jsonl, npy, parquet
from handler.formats.base import Format

FORMATS: dict[str, Format] = {f.name: f for f in (csv.FORMAT, parquet.FORMAT, jsonl.FORMAT, npy.FORMAT)}
# Looked up first: ".csv.gz" before ".csv" would not match it anyway, but the order says which wins.
GZIPPED: tuple[Format, ...] = (gz.gzipped(csv.FORMAT), gz.gzipped(jsonl.FORMAT))


def format_of(key: str) -> Format | None:
    """The format of a file, from its name's extension (any case); None for one no format reads."""
    low = key.lower()
    return next((f for f in (*GZIPPED, *FORMATS.values()) if low.endswith(f.extensions)), None)


def extensions() -> str:
    """The extensions read, for messages: ".csv, .parquet, .jsonl, .ndjson, .npy, .csv.gz, ..."."""
    return ", ".join(e for f in (*FORMATS.values(), *GZIPPED) for e in f.extensions)


def unsupported(key: str) -> str:
    """Why a file no format reads is refused, and what to send instead."""
    return gz.refusal(key) or f"unsupported file type {posixpath.splitext(key)[1]!r}: use {extensions()}"

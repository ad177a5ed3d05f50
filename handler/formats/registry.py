"""The file formats by name and extension. A new format is a module with a `FORMAT` (its reader and writer) and
a line here; nothing else changes."""

from __future__ import annotations

from handler.formats import csv, jsonl, npy, parquet
from handler.formats.base import Format

FORMATS: dict[str, Format] = {f.name: f for f in (csv.FORMAT, parquet.FORMAT, jsonl.FORMAT, npy.FORMAT)}


def format_of(key: str) -> Format | None:
    """The format of a file, from its name's extension (any case); None for one no format reads."""
    low = key.lower()
    return next((f for f in FORMATS.values() if low.endswith(f.extensions)), None)


def extensions() -> str:
    """The extensions read, for messages: ".csv, .parquet, .jsonl, .ndjson, .npy"."""
    return ", ".join(e for f in FORMATS.values() for e in f.extensions)

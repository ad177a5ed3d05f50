"""CSV rows -> chunks of coerced feature batches, streamed (the file is never held whole).

A CSV needs a header naming every feature (any order) and suits models whose features are all
scalars (tabular models); cells are text by nature, so numbers are parsed from them whatever
NUMERIC_STRINGS says. Blocks of plain lines are parsed with numpy (`csv_fast`); anything unusual
goes through `csv.reader` and the coercer, with the same result. Rows that fail are reported
with their row and line numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Any, BinaryIO

import numpy as np

from handler.core.coerce import Coercer
from handler.errors import FieldError
from handler.sources import csv_fast
from handler.sources.file_chunks import Chunk, FileRejected, RowError, coerced_chunk


def text_coercer(coercer: Coercer) -> Coercer:
    """Text cells are strings by nature: the same coercer, parsing numbers from them whatever NUMERIC_STRINGS says."""
    return Coercer(coercer.signature, replace(coercer.policy, numeric_strings="accept"))


def check_csv_model(coercer: Coercer) -> None:
    """CSV carries one value per cell: refuse, with what to send instead, a model with array inputs."""
    arrays = [f"{f.name} ({f.describe()})" for f in coercer.features if f.rank > 0]
    if arrays:
        raise FileRejected(
            f"a CSV holds one value per cell, but this model takes array input(s) {', '.join(arrays)}: send JSON "
            f"Lines (one request row per line){' or .npy' if len(coercer.features) == 1 else ''}"
        )


def csv_chunks(reader: BinaryIO, coercer: Coercer, chunk_rows: int, fast: bool = True) -> Iterator[Chunk]:
    """Stream a CSV with a header into chunks of at most `chunk_rows` data rows.

    Each chunk is the next `chunk_rows` records, as csv.reader counts them (blank lines included,
    then dropped). A chunk of plain lines is parsed with numpy (`csv_fast`); any other, or every
    one when `fast` is False, goes through csv.reader and `text_rows_chunk`, with the same result.
    """
    lines = csv_fast.LineSource(reader)
    records = csv.reader(lines)
    try:
        header = next(records, None)
        if header is None:
            return
        index = _csv_header(header, coercer)
        width = len(header)
        parser = csv_fast.BlockParser(coercer.features, index, width)
        row0 = 0
        while True:
            last = lines.line_num
            if fast:
                block, n_lines = lines.take(chunk_rows)
                if not n_lines:
                    return
                parsed = parser.parse(block, last + 1)
                if parsed is not None:
                    chunk = _parsed_chunk(parsed, row0, coercer)
                    if len(parsed.lines):
                        yield chunk
                        row0 += len(parsed.lines)
                    continue
                lines.untake(block, n_lines)
            batch: list[list[str]] = []
            ends: list[int] = []
            add, end = batch.append, ends.append
            for rec in islice(records, chunk_rows):
                add(rec)
                end(lines.line_num)  # a quoted field may span lines: the reader knows where each row ends
            if not batch:
                return
            starts = [last + 1, *(e + 1 for e in ends[:-1])]
            if min(map(len, batch)) <= 1:
                # Blank (or whitespace-only) lines are not rows.
                keep = [i for i, r in enumerate(batch) if len(r) > 1 or (r and (width == 1 or r[0].strip()))]
                batch, starts = [batch[i] for i in keep], [starts[i] for i in keep]
            if batch:
                yield text_rows_chunk(batch, starts, row0, index, width, coercer)
                row0 += len(batch)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"the file is not valid UTF-8 ({exc.reason} at byte {exc.start} of a block)") from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV: {exc}", line=lines.line_num) from None


def _parsed_chunk(parsed: csv_fast.ParsedBlock, row0: int, coercer: Coercer) -> Chunk:
    """A block csv_fast parsed -> a Chunk; its suspect rows are judged by the coercer."""
    keep, by_row = _judge_suspects(
        parsed.columns, parsed.suspect, lambda where: [parsed.raw_row(p) for p in where], coercer
    )
    kept = np.flatnonzero(keep)
    lines = parsed.lines
    return coerced_chunk(
        {name: col[keep] for name, col in parsed.columns.items()},
        row0 + kept,
        lines[kept],
        coercer,
        [RowError(row0 + i, int(lines[i]), errs) for i, errs in sorted(by_row.items())],
    )


def _csv_header(header: list[str], coercer: Coercer) -> dict[str, int]:
    names = [h.strip() for h in header]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise FileRejected(f"the header repeats column(s) {', '.join(dupes)}", line=1)
    missing = [f for f in coercer.names if f not in names]
    if missing:
        raise FileRejected(
            f"the header lacks feature column(s) {', '.join(missing)}; it must name every feature: "
            f"{', '.join(coercer.names)}",
            line=1,
        )
    unknown = [h for h in names if h not in coercer.names]
    if unknown and coercer.policy.unknown_features == "reject":
        raise FileRejected(
            f"the header has column(s) that are not features of this model: {', '.join(unknown)} "
            f"(remove them, or set UNKNOWN_FEATURES=ignore)",
            line=1,
        )
    return {f: names.index(f) for f in coercer.names}


def text_rows_chunk(
    records: list[list[str]] | np.ndarray,
    lines: list[int] | None,
    row0: int,
    index: dict[str, int],
    width: int,
    coercer: Coercer,
) -> Chunk:
    """Text rows -> a Chunk: vectorised parsing for the plain rows, the coercer for anything unusual.

    Every row that numpy cannot take as-is (a cell that is not a number, NaN/Inf, an unknown
    category under a strict policy) goes through `Coercer.coerce_rows`, which either accepts it
    (e.g. imputes) or names every problem; the fast path only ever accepts rows the coercer would.
    """
    n = len(records)
    errors: dict[int, RowError] = {}
    lengths = [len(r) for r in records] if isinstance(records, list) else [width] * n
    pos_ok = list(range(n)) if lengths.count(width) == n else [i for i in range(n) if lengths[i] == width]
    if len(pos_ok) < n:
        for i in range(n):
            if len(records[i]) != width:
                reason = f"has {len(records[i])} values but the header has {width} columns"
                errors[i] = RowError(row0 + i, lines[i] if lines else None, [FieldError(None, None, reason)])
        records = [records[i] for i in pos_ok]
    pos = np.asarray(pos_ok, dtype=np.int64)
    m = len(pos)
    columns: dict[str, np.ndarray] = {}
    suspect = np.zeros(m, dtype=bool)
    if m:
        transposed = list(zip(*records, strict=True)) if isinstance(records, list) else list(np.asarray(records).T)
        for f in coercer.features:
            raw = transposed[index[f.name]]
            if f.kind != "string":
                values, bad = _parse_floats(raw)
                suspect |= bad
                columns[f.name] = values
            else:
                cats = np.array(raw.tolist() if isinstance(raw, np.ndarray) else raw, dtype=object)
                if f.vocabulary is not None:
                    vocabulary = f.vocabulary
                    suspect |= np.fromiter((v not in vocabulary for v in cats.tolist()), dtype=bool, count=m)
                columns[f.name] = cats
    rows_of = records
    keep, by_row = _judge_suspects(
        columns, suspect, lambda where: [{f: str(rows_of[p][index[f]]) for f in coercer.names} for p in where], coercer
    )
    for k, errs in by_row.items():
        i = int(pos[k])
        errors[i] = RowError(row0 + i, lines[i] if lines else None, errs)
    kept = pos[keep]
    return coerced_chunk(
        {name: col[keep] for name, col in columns.items()},
        row0 + kept,
        np.asarray(lines, dtype=np.int64)[kept] if lines else None,
        coercer,
        [errors[i] for i in sorted(errors)],
    )


def _judge_suspects(
    columns: dict[str, np.ndarray],
    suspect: np.ndarray,
    raw_rows: Callable[[list[int]], list[dict[str, str]]],
    coercer: Coercer,
) -> tuple[np.ndarray, dict[int, list[FieldError]]]:
    """Send the suspect rows to the coercer: keep the ones it accepts (with its values), and every reason for the rest.

    Returns the mask of rows to keep and, by row position, the errors of the rest.
    """
    keep: np.ndarray = ~suspect
    by_row: dict[int, list[FieldError]] = {}
    if suspect.any():
        where = np.flatnonzero(suspect)
        good_cols, field_errors, good = coercer.coerce_rows(raw_rows(where.tolist()))
        if len(good):
            accepted = where[good]
            keep[accepted] = True
            for name, col in good_cols.items():
                columns[name][accepted] = col
        for e in field_errors:
            by_row.setdefault(int(where[e.instance or 0]), []).append(e)
    return keep, by_row


def _parse_floats(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Text cells -> float64 values and a mask of cells that are not a finite number."""
    try:
        # numpy parses a tuple of str in C (about 2M cells/s here); a unicode array via astype.
        values = raw.astype(np.float64) if isinstance(raw, np.ndarray) else np.array(raw, dtype=np.float64)
    except ValueError:
        # Some cell is not a number: parse one by one to find which (rare, so per-cell is fine).
        values = np.empty(len(raw), dtype=np.float64)
        for i, cell in enumerate(raw):
            try:
                values[i] = float(cell)
            except ValueError:
                values[i] = np.nan
    return values, ~np.isfinite(values)

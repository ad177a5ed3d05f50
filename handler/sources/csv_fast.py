"""Fast CSV: a byte stream cut into blocks of whole lines, and a vectorised parse of a plain block.

`LineSource` reads the object in large byte blocks. It hands out either the next `k` physical
lines as one bytes block (`take`), or, as an iterator, one text line at a time split exactly as
`io.TextIOWrapper(newline="")` splits them (for `csv.reader`, which the slow path uses). Both
draw from the same buffer and count lines in `line_num`, so the two paths can alternate.

`BlockParser.parse` turns a block of plain lines (no quotes, no lone CR, no NUL, every line with
the header's number of fields or empty) into feature columns with numpy, and returns None for
any other block, which then goes through `csv.reader` and the coercer like before. Cells it
cannot take as-is (a number it does not recognise, NaN/Inf, a category outside a strict
vocabulary) mark their row as suspect; the caller sends those rows to `Coercer.coerce_rows`,
which accepts them or names every problem. Numbers are parsed exactly: a plain decimal with at
most 2**53 as its digits and at most 22 after the point is one correctly rounded division, the
same double `float()` returns; anything else is parsed by `float()` itself.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from handler.core.signature import TensorSpec

READ_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_NL, _CR, _COMMA, _DOT, _MINUS, _PLUS, _ZERO = 10, 13, 44, 46, 45, 43, 48
# A plain decimal longer than this is left to float(); so is one with more than 18 digits.
_MAX_NUMBER_CHARS = 24
_MAX_DIGITS = 18
_EXACT_MANTISSA = 2**53
_EXACT_POWERS = 22
_POW10 = 10.0 ** np.arange(_EXACT_POWERS + 1)
# Categorical cells longer than this are sliced one by one rather than padded into a matrix.
_MAX_GATHER_CHARS = 64
# Up to this many vocabulary entries are matched by comparison; unique() sorts whatever is left.
_MAX_COMPARED = 16


class LineSource:
    """Whole lines of a UTF-8 byte stream: as blocks of `k` lines, or one text line at a time."""

    def __init__(self, reader: BinaryIO, read_bytes: int = READ_BYTES) -> None:
        self._reader = reader
        self._read_bytes = read_bytes
        self._buf = b""
        self._pos = 0  # what is before it in _buf has been handed out
        self._eof = False
        self._started = False
        self.line_num = 0  # lines handed out so far, counted as TextIOWrapper(newline="") splits them

    def _read(self) -> bytes:
        if self._eof:
            return b""
        data = self._reader.read(self._read_bytes)
        if not self._started:
            self._started = True
            while data and len(data) < len(_BOM) and _BOM.startswith(data):
                more = self._reader.read(self._read_bytes)
                if not more:
                    break
                data += more
            if data.startswith(_BOM):
                # As the utf-8-sig codec does, at the start only; the block may have held nothing else.
                data = data[len(_BOM) :] or self._reader.read(self._read_bytes)
        if not data:
            self._eof = True
        return data

    def _more(self) -> int:
        """Read another block onto the buffer; returns the buffer length before it (0 bytes read at EOF)."""
        data = self._read()
        rest = self._buf[self._pos :]
        self._buf, self._pos = rest + data, 0
        return len(rest)

    def take(self, k: int) -> tuple[bytes, int]:
        """The next (at most) `k` lines, each ending in LF except perhaps the file's last, and their count."""
        ends = np.flatnonzero(np.frombuffer(self._buf, dtype=np.uint8, offset=self._pos) == _NL)
        found = [ends + self._pos]
        count = len(ends)
        while count < k and not self._eof:
            before = len(self._buf)
            shift = self._more() - before  # positions move when the handed-out part is dropped
            found = [f + shift for f in found]
            new = np.flatnonzero(np.frombuffer(self._buf, dtype=np.uint8, offset=before + shift) == _NL)
            found.append(new + before + shift)
            count += len(new)
        buf, pos = self._buf, self._pos
        if count >= k:
            all_ends = np.concatenate(found) if len(found) > 1 else found[0]
            cut = int(all_ends[k - 1]) + 1
            n = k
        else:
            cut = len(buf)
            n = count + (1 if cut > pos and buf[-1] != _NL else 0)
        self._pos = cut
        self.line_num += n
        return buf[pos:cut], n

    def untake(self, block: bytes, n: int) -> None:
        """Put back a block from `take`, so the next reads see it again."""
        self._buf, self._pos = block + self._buf[self._pos :], 0
        self.line_num -= n

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        i = self._buf.find(b"\n", self._pos)
        while i < 0 and not self._eof:
            start = self._more()
            i = self._buf.find(b"\n", start)
        buf, pos = self._buf, self._pos
        stop = i if i >= 0 else len(buf)
        # Like TextIOWrapper(newline=""): a CR not followed by LF also ends a line.
        j = buf.find(b"\r", pos, stop)
        if j >= 0 and j + 1 < len(buf) and buf[j + 1] != _NL:
            end = j + 1
        elif i >= 0:
            end = i + 1
        else:
            end = len(buf)
        if end == pos:
            raise StopIteration
        self._pos = end
        self.line_num += 1
        return buf[pos:end].decode("utf-8")


@dataclass
class ParsedBlock:
    """A plain block as feature columns: every non-empty line is a row."""

    columns: dict[str, np.ndarray]  # float64 for numeric features, str objects for categorical ones
    suspect: np.ndarray  # rows the coercer must judge: a cell not a finite number, or an unknown strict category
    lines: np.ndarray  # 1-based line number of each row
    _data: bytes
    _starts: np.ndarray  # (rows, width) byte offsets of each field
    _ends: np.ndarray
    _index: Mapping[str, int]

    def raw_row(self, i: int) -> dict[str, str]:
        """The text of row `i`'s feature cells, as csv.reader would give them."""
        return {
            name: self._data[self._starts[i, j] : self._ends[i, j]].decode("utf-8") for name, j in self._index.items()
        }


class BlockParser:
    """Parses plain blocks of one file: its header's width and where each feature's column is."""

    def __init__(self, features: tuple[TensorSpec, ...], index: Mapping[str, int], width: int) -> None:
        self.features = features
        self.index = dict(index)
        self.width = width

    def parse(self, block: bytes, first_line: int) -> ParsedBlock | None:
        """Columns of a block of whole lines starting at line `first_line`, or None if it needs csv.reader."""
        w = self.width
        quotes = b'"' in block
        if w < 2 or b"\x00" in block or (quotes and b'""' in block):
            return None  # NUL, and quotes inside quoted fields (or empty quoted ones), are csv.reader's
        if b"\r" in block:
            if block.count(b"\r") != block.count(b"\r\n"):
                return None  # a lone CR ends a line for csv.reader: leave that to it
            block = block.replace(b"\r\n", b"\n")
        if not block.endswith(b"\n"):
            block += b"\n"
        if not block.isascii():
            block.decode("utf-8")  # an invalid file is rejected as on the slow path (UnicodeDecodeError)
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == _NL)
        lengths = np.diff(ends, prepend=-1) - 1
        if int(lengths.max()) > csv.field_size_limit():
            return None
        line_numbers = first_line + np.arange(len(ends), dtype=np.int64)
        empty = lengths == 0
        if empty.any():
            # Empty lines are not rows; whitespace-only ones fail the field count below and go the slow way.
            line_numbers = line_numbers[~empty]
            block = b"\n".join(line for line in block.split(b"\n") if line) + b"\n"
            if block == b"\n":
                return _empty_block(self.features)
            data = np.frombuffer(block, dtype=np.uint8)
        seps = np.flatnonzero((data == _COMMA) | (data == _NL))
        m = len(line_numbers)
        if len(seps) != m * w or not (data[seps[w - 1 :: w]] == _NL).all():
            return None  # some line has another number of fields than the header
        ends_ = seps.reshape(m, w)
        starts = np.empty_like(ends_)
        starts.flat[0] = 0
        starts.flat[1:] = seps[:-1] + 1
        if quotes and not _unquote(data, starts, ends_):
            return None
        columns: dict[str, np.ndarray] = {}
        suspect = np.zeros(m, dtype=bool)
        numeric = [f.name for f in self.features if f.kind != "string"]
        if numeric:
            at = [self.index[name] for name in numeric]
            values, bad = _parse_numbers(block, data, starts[:, at].T.ravel(), ends_[:, at].T.ravel())
            values = values.reshape(len(numeric), m)
            suspect |= bad.reshape(len(numeric), m).any(axis=0)
            for k, name in enumerate(numeric):
                columns[name] = values[k]
        for f in self.features:
            if f.kind == "string":
                j = self.index[f.name]
                col, unknown = _categories(block, data, starts[:, j], ends_[:, j], f.vocabulary)
                columns[f.name] = col
                if unknown is not None:
                    suspect |= unknown
        return ParsedBlock(
            columns={f.name: columns[f.name] for f in self.features},
            suspect=suspect,
            lines=line_numbers,
            _data=block,
            _starts=starts,
            _ends=ends_,
            _index=self.index,
        )


def _unquote(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Narrow quoted fields to their text, in place; False if a quote is anywhere but around a whole field.

    Only fields like `"text"` with no quote, comma or line break inside are taken here: a comma or
    a line break inside quotes has already changed the field count, and "" was refused before.
    """
    quote = data == ord('"')
    last = np.maximum(ends - 1, starts)
    quoted = quote[starts] & quote[last] & (ends - starts >= 2)
    if 2 * int(quoted.sum()) != int(quote.sum()):
        return False  # some quote opens a field it does not close, or sits inside one
    starts += quoted
    ends -= quoted
    return True


def _empty_block(features: tuple[TensorSpec, ...]) -> ParsedBlock:
    none = np.zeros((0, 1), dtype=np.int64)
    columns = {f.name: np.zeros(0, dtype=object if f.kind == "string" else np.float64) for f in features}
    return ParsedBlock(columns, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64), b"", none, none, {})


def _gather(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Cells as a (cells, width) byte matrix, zero past each cell's end."""
    at = starts[:, None] + np.arange(width)
    inside = np.arange(width) < lengths[:, None]
    return np.where(inside, data[np.minimum(at, len(data) - 1)], 0).astype(np.uint8)


def _parse_numbers(
    block: bytes, data: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cells -> float64 values (as float() gives them) and a mask of cells that are not a finite number."""
    n = len(starts)
    values = np.full(n, np.nan)
    lengths = ends - starts
    plain = (lengths >= 1) & (lengths <= _MAX_NUMBER_CHARS)
    width = int(min(lengths.max(), _MAX_NUMBER_CHARS)) if n else 0
    if width:
        # One character position at a time, across every cell: contiguous vectors, few passes.
        last = len(data) - 1
        mantissa = np.zeros(n, dtype=np.int64)
        n_digits = np.zeros(n, dtype=np.int64)
        after_point = np.zeros(n, dtype=np.int64)
        n_dots = np.zeros(n, dtype=np.int64)
        seen_dot = np.zeros(n, dtype=bool)
        negative = np.zeros(n, dtype=bool)
        for k in range(width):
            c = data[np.minimum(starts + k, last)]
            inside = lengths > k
            d = c - _ZERO  # wraps around below '0', so one comparison finds the digits
            digit = (d < 10) & inside
            dot = (c == _DOT) & inside
            other = inside & ~digit & ~dot
            if k == 0:
                negative = c == _MINUS
                other &= ~(negative | (c == _PLUS))
            plain &= ~other
            mantissa = np.where(digit, mantissa * 10 + d, mantissa)
            n_digits += digit
            after_point += digit & seen_dot
            n_dots += dot
            seen_dot |= dot
        plain &= (n_dots <= 1) & (n_digits >= 1) & (n_digits <= _MAX_DIGITS)
        plain &= (mantissa <= _EXACT_MANTISSA) & (after_point <= _EXACT_POWERS)
        # Both operands are exact doubles, so the one division is correctly rounded: float()'s result.
        exact = mantissa[plain].astype(np.float64) / _POW10[after_point[plain]]
        values[plain] = np.where(negative[plain], -exact, exact)
    for i in np.flatnonzero(~plain).tolist():
        with contextlib.suppress(ValueError):  # else it stays NaN: the coercer names the problem
            values[i] = float(block[starts[i] : ends[i]].decode("utf-8"))
    return values, ~np.isfinite(values)


def _categories(
    block: bytes, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, vocabulary: frozenset[str] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cells -> an object array of str, and (under a strict vocabulary) a mask of unknown categories."""
    lengths = ends - starts
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    table: list[str] = []  # the distinct texts; codes[i] is row i's position in it
    if width <= _MAX_GATHER_CHARS:
        # No NUL is in a plain block, so zero padding cannot be confused with a cell's own bytes.
        cells = _gather(data, starts, lengths, width).view(f"S{width}").ravel()
        codes = np.full(len(cells), -1, dtype=np.int64)
        if vocabulary is not None and len(vocabulary) <= _MAX_COMPARED:
            # A few vectorised comparisons find the usual values without sorting the column.
            for v in sorted(vocabulary):
                raw = v.encode("utf-8")
                if len(raw) <= width and b"\x00" not in raw:
                    codes[cells == raw] = len(table)
                    table.append(v)
        rest = np.flatnonzero(codes < 0)
        if len(rest):
            uniques, inverse = np.unique(cells[rest], return_inverse=True)
            codes[rest] = len(table) + inverse.ravel()
            table += [u.decode("utf-8") for u in uniques.tolist()]
    else:
        first: dict[bytes, int] = {}
        raw_cells = [block[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        codes = np.fromiter((first.setdefault(c, len(first)) for c in raw_cells), dtype=np.int64, count=len(raw_cells))
        table = [u.decode("utf-8") for u in first]
    column = np.array(table, dtype=object)[codes]
    if vocabulary is None:
        return column, None
    unknown = np.array([t not in vocabulary for t in table], dtype=bool)
    return column, unknown[codes] if unknown.any() else None

"""A CSV byte stream cut into blocks that end where records end, exactly where pyarrow's streaming reader cuts it.

pyarrow's streaming CSV reader reads `block_bytes` at a time and parses every record that ends in what it has
read, carrying the rest over to the next read. `blocks` cuts the stream at the same places, so each block can be
parsed on its own (on several threads) and still hold the rows pyarrow's batch held: the chunks the CSV reader
yields, and so a resumed job's chunk boundaries, stay those of one sequential reader.

Where a record ends follows pyarrow's lexer (`arrow/csv/chunker.cc`, with quoting and values that may hold line
breaks): a line break ends a record outside a quoted value; a quote opens one only at the start of a field; two
quotes inside one are a quote; after the closing quote the field goes on unquoted, its quotes as any character.
Three ways to find the last record end, the cheapest that is exact:
- no quote in the data: the last line break;
- quotes only where CSV writers put them (each quote that would open a value starts a field, or doubles the quote
  before it): then being inside a value is an odd count of quotes before, found with numpy;
- anything else (`ab"c`): a regular expression that follows the lexer, at about 100 MB/s.

pyarrow also skips a byte order mark at the start of its first read, and a line feed at the start of a read that
follows one ending in a carriage return (the two were one line break): so do these blocks. A block that starts
with a byte order mark is given a blank line before it (not a record), so that parsing it alone keeps the mark as
pyarrow's reader keeps it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

BOM = b"\xef\xbb\xbf"
# pyarrow's words when a record runs past the read after the one it starts in (the CSV reader rejects the file).
STRADDLING = "straddling object straddles two block boundaries (try to increase block size?)"

_QUOTE, _COMMA, _LF, _CR = ord('"'), ord(","), ord("\n"), ord("\r")
_FIELD_START = np.zeros(256, dtype=bool)  # the bytes after which a field starts (outside quotes)
_FIELD_START[[_COMMA, _LF, _CR]] = True
# pyarrow's lexer as a regular expression: records from the start of the data, each field quoted (its quotes
# doubled inside, anything but a delimiter or line break after the closing one) or not (no quote first), then a
# line break (CR LF, CR or LF). Possessive throughout: one way to read the bytes, no backtracking.
_FIELD = rb'(?:"(?:[^"]++|"")*+"[^,\r\n]*+|[^",\r\n][^,\r\n]*+)?+'
_RECORDS = re.compile(rb"(?:" + _FIELD + rb"(?:," + _FIELD + rb")*+(?:\r\n?+|\n))*+")


def blocks(raw: Any, block_bytes: int) -> Iterator[bytes]:
    """`raw`'s bytes (a file object whose readinto fills the buffer, short only at the end) in record-aligned blocks.

    A block ends where pyarrow's streaming reader, reading `block_bytes` at a time, would end its batch; the last
    one holds what is left. Raises pyarrow's ArrowInvalid where that reader would: a record running past the read
    after the one it starts in.
    """
    partial = b""
    reads = _reads(raw, block_bytes)
    current = next(reads, None)
    while current is not None:
        following = next(reads, None)
        data = partial + current if partial else bytes(current)
        if following is None:  # the last read: everything left is parsed, a record without a line break included
            block, partial = data, b""
        else:
            end = record_end(data)
            if end == 0 and partial:
                raise pa.ArrowInvalid(STRADDLING)
            block, partial = data[:end], data[end:]
        if block:
            yield b"\n" + block if block.startswith(BOM) else block
        current = following


def _reads(raw: Any, size: int) -> Iterator[bytearray]:
    """The reads of `size` bytes as pyarrow's reader takes them: a first byte order mark, and a line feed after a
    read that ended in a CR, dropped; an empty read is the end."""
    first, trailing_cr = True, False
    while True:
        buffer = bytearray(size)
        n = raw.readinto(buffer)
        if not n:
            return
        del buffer[n:]
        ends_in_cr = buffer[-1] == _CR
        start = len(BOM) if first and buffer.startswith(BOM) else 0
        if trailing_cr and len(buffer) > start and buffer[start] == _LF:
            start += 1
        del buffer[:start]
        if not buffer:
            return
        yield buffer
        first, trailing_cr = False, ends_in_cr


def record_end(data: bytes) -> int:
    """Where the last whole record of `data` (which starts at a record's start) ends: 0 if none does."""
    if data.find(b'"') == -1:
        return _last_line_end(data, len(data)) + 1
    arr = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(arr == _QUOTE)
    if _quoted_as_writers_quote(arr, quotes):
        return _last_end_outside_quotes(data, quotes) + 1
    match = _RECORDS.match(data)
    return match.end() if match is not None else 0


def _last_line_end(data: bytes, before: int) -> int:
    """The position of the last line break (LF or CR) in data[:before], -1 if none."""
    return max(data.rfind(b"\n", 0, before), data.rfind(b"\r", 0, before))


def _quoted_as_writers_quote(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Whether every quote that would open a value (an even count of quotes before it) starts a field, or follows
    the quote that would close one (a doubled quote inside it): then quotes alternate opening and closing."""
    opening = quotes[0::2]
    before = opening - 1
    ok = _FIELD_START[arr[np.maximum(before, 0)]] | (before < 0)
    if len(opening) > 1:
        ok[1:] |= quotes[1::2][: len(opening) - 1] == before[1:]
    return bool(ok.all())


def _last_end_outside_quotes(data: bytes, quotes: np.ndarray) -> int:
    """The last line break with an even count of quotes before it (quotes alternating as writers put them)."""
    at = _last_line_end(data, len(data))
    while at >= 0:
        before = int(np.searchsorted(quotes, at))
        if before % 2 == 0:
            return at
        at = _last_line_end(data, int(quotes[before - 1]))  # inside a value: look before the quote that opened it
    return -1

"""A CSV byte stream in which a row too long to parse stands for itself, not for the whole file.

pyarrow's CSV reader needs a record to fit in one block (BLOCK_BYTES): one longer line (a 20 MB cell)
fails the whole file, its good rows unanswered and no row named. Here a line longer than MAX_ROW_BYTES
is cut out, from its start to the line break that ends its record (one outside quotes), and a line
that cannot be a record of this file (one more field than the header has, each the marker TOO_LONG)
takes its place: pyarrow refuses that line like any record of the wrong width, numbered among the
rows, and the CSV reader names it as too long. Memory stays bounded: at most one line's worth of
bytes (MAX_ROW_BYTES) is held back while it is not yet known to end.

A line that starts inside a quoted value (a value with line breaks) is passed on as it is: cutting it
would shift the quotes of everything after it; pyarrow then judges the file, as before.
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any, BinaryIO

MAX_ROW_BYTES = 4 << 20  # the CSV reader's block: pyarrow parses any record up to it
TOO_LONG = "\x1fskewless:row-too-long\x1f"
READ_BYTES = 1 << 20


class LongRowsCut(io.RawIOBase):
    """`raw`'s bytes, each line over `limit` bytes replaced by a marker line of `width + 1` fields.

    The bytes pass through as views of what was read (no copy but the one into the reader's buffer); only the
    line that straddles two reads is joined.
    """

    def __init__(self, raw: BinaryIO, width: int, limit: int = MAX_ROW_BYTES) -> None:
        self._raw, self._limit = raw, limit
        self._read_bytes = min(READ_BYTES, limit)  # so that a line within one read is never over the limit
        self._marker = memoryview((",".join([TOO_LONG] * (width + 1)) + "\n").encode())
        self._ready: deque[memoryview] = deque()  # whole lines, ready to be read
        self._pending = b""  # the start of a line whose end is not read yet
        self._quoted = False  # the bytes passed on so far end inside a quoted value
        self._skipping = False  # within a line being cut out
        self._skip_odd = False  # an odd number of quotes in what was cut out of the line so far
        self._through = False  # within a long line that began inside quotes: passed on as it comes
        self._eof = False
        self.cut = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` whole (short only at the end): pyarrow reads a block at a time, as from the plain stream."""
        filled = 0
        while filled < len(buffer):
            if not self._ready:
                if self._eof:
                    break
                self._fill()
                continue
            piece = self._ready[0]
            n = min(len(buffer) - filled, len(piece))
            buffer[filled : filled + n] = piece[:n]
            filled += n
            if n == len(piece):
                self._ready.popleft()
            else:
                self._ready[0] = piece[n:]
        return filled

    def _fill(self) -> None:
        data = self._raw.read(self._read_bytes)
        if not data:
            self._eof = True
            if self._skipping:
                self._cut_done()
            elif self._pending:
                self._pass(self._pending)
            self._pending = b""
            return
        at = 0
        while at < len(data):
            if self._through:
                first = data.find(b"\n", at)
                end = len(data) if first == -1 else first + 1
                self._pass(data, at, end)
                self._through, at = first == -1, end
                continue
            if self._skipping:
                record_end = self._record_end(data, at)
                if record_end is None:
                    return  # the rest belongs to the line being cut out
                self._cut_done()
                at = record_end + 1
                continue
            first = data.find(b"\n", at)
            line = len(self._pending) + (first - at if first != -1 else len(data) - at)
            if line > self._limit and not self._quoted:
                self._skipping, self._skip_odd = True, self._pending.count(b'"') % 2 == 1
                self._pending = b""
                continue  # its record's end is looked for from `at`
            if first == -1:
                self._pending += data[at:]
                if self._quoted and len(self._pending) > self._limit:  # not ours to cut, nor to hold
                    self._pass(self._pending)
                    self._pending, self._through = b"", True
                return
            last = data.rfind(b"\n", at)
            self._pass(self._pending + data[at : first + 1])
            if last > first:
                self._pass(data, first + 1, last + 1)
            self._pending = data[last + 1 :]
            return

    def _pass(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        """Hand data[start:end] on (a view), keeping track of whether it ends inside a quoted value."""
        end = len(data) if end is None else end
        # find is a fast scan, and most files have no quotes; count is slower
        if data.find(b'"', start, end) != -1 and data.count(b'"', start, end) % 2:
            self._quoted = not self._quoted
        self._ready.append(memoryview(data)[start:end])

    def _cut_done(self) -> None:
        self._ready.append(self._marker)
        self._skipping, self.cut = False, self.cut + 1

    def _record_end(self, data: bytes, at: int) -> int | None:
        """Where the line being cut out ends: its first line break outside quotes (None: not in `data`)."""
        while True:
            nl = data.find(b"\n", at)
            if nl == -1:
                self._skip_odd ^= data.count(b'"', at) % 2 == 1
                return None
            self._skip_odd ^= data.count(b'"', at, nl) % 2 == 1
            if not self._skip_odd:
                return nl
            at = nl + 1

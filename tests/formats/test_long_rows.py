"""The CSV stream in which an over-long line stands for itself (formats/long_rows.py), against a reference
written here: any bytes, any limit, the same output whatever the reads' sizes."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from handler.formats.long_rows import TOO_LONG, LongRowsCut


def reference(body: bytes, width: int, limit: int) -> bytes:
    """Line by line: a line over `limit` bytes that starts outside quotes is replaced, up to the first line
    break outside quotes (its record's end), by one line of width + 1 markers; all else is kept."""
    marker = (",".join([TOO_LONG] * (width + 1)) + "\n").encode()
    out, i, quoted = [], 0, False
    while i < len(body):
        nl = body.find(b"\n", i)
        end = len(body) if nl == -1 else nl
        if not quoted and end - i > limit:
            j, odd = i, False
            while True:
                nl = body.find(b"\n", j)
                if nl == -1:
                    j = len(body)
                    break
                odd ^= body.count(b'"', j, nl) % 2 == 1
                j = nl + 1
                if not odd:
                    break
            out.append(marker)
            i = j
            continue
        line = body[i : end + 1]
        quoted ^= line.count(b'"') % 2 == 1
        out.append(line)
        i = end + 1
    return b"".join(out)


def _through(body: bytes, width: int, limit: int, read_size: int) -> bytes:
    stream = LongRowsCut(io.BytesIO(body), width, limit)
    out = bytearray()
    while chunk := stream.read(read_size):
        out += chunk
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from([b"a", b"bb", b",", b'"', b"\n", b"\r\n", b"x" * 30]), max_size=60).map(b"".join),
    limit=st.integers(1, 40),
    read_size=st.integers(1, 50),
)
def test_any_bytes_come_out_as_the_reference_says(body: bytes, limit: int, read_size: int) -> None:
    assert _through(body, 2, limit, read_size) == reference(body, 2, limit)


def test_lines_within_the_limit_pass_unchanged_and_a_long_one_becomes_one_marker_line() -> None:
    body = b"a,b\n1,2\n" + b"x" * 100 + b",9\n3,4"
    got = _through(body, 2, 50, 7)
    marker = ",".join([TOO_LONG] * 3).encode() + b"\n"
    assert got == b"a,b\n1,2\n" + marker + b"3,4"  # written by hand: the third line is cut, the rest kept

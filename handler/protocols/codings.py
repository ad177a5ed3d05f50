"""HTTP content codings: compressed request bodies (gzip, deflate) decoded within MAX_BODY_BYTES, and
whether a client takes a gzip'd answer.

A request body is inflated with a bound (`zlib.decompressobj` with `max_length`), so a small body
that inflates to gigabytes (a zip bomb) is refused with a 413 having taken memory in proportion to
MAX_BODY_BYTES (about twice it: zlib's output is copied once as it ends), never to the bomb.
`deflate` is the zlib format (RFC 9110 §8.4.1.2), but some clients send raw deflate: zlib's two-byte
header tells them apart.
"""

from __future__ import annotations

import zlib

from handler.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# What a 415 names, and its Accept-Encoding header says (RFC 9110 §12.5.3).
ACCEPTED = "gzip, deflate"
_GZIP = ("gzip", "x-gzip")  # x-gzip: the old name, still to be taken as gzip (RFC 9110 §8.4.1.3)
_GZIP_WBITS = zlib.MAX_WBITS | 16
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS


def codings(content_encoding: str) -> list[str]:
    """The codings applied to the body, in the order they were applied (identity dropped); 415 for others."""
    applied = [c.strip().lower() for c in content_encoding.split(",")]
    applied = [c for c in applied if c and c != "identity"]
    for coding in applied:
        if coding not in _GZIP and coding != "deflate":
            raise UnsupportedMediaType(
                f"the body's Content-Encoding {coding!r} is not one we decode: send it as {ACCEPTED}, or uncompressed",
                ACCEPTED,
            )
    return applied


def decode(data: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """The body with its Content-Encoding undone, last coding first; 400 if it is not what it says, 413 if too big."""
    for coding in reversed(codings(content_encoding)):
        data = _gunzip(data, max_bytes) if coding in _GZIP else _inflate(data, max_bytes)
    return data


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    # A gzip body may hold several members one after the other (RFC 1952 §2.2): each is inflated in turn.
    parts: list[bytes] = []
    size = 0
    while True:
        part, rest = _inflate_one(data, _GZIP_WBITS, max_bytes, "gzip", size)
        parts.append(part)
        size += len(part)
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        data = rest


def _inflate(data: bytes, max_bytes: int) -> bytes:
    if not _zlib_header(data):
        return _whole(data, _RAW_WBITS, max_bytes)
    try:
        return _whole(data, _ZLIB_WBITS, max_bytes)
    except BadRequest as exc:
        as_zlib = exc  # raw deflate can begin with two bytes that look like zlib's header: try it as raw too
    try:
        return _whole(data, _RAW_WBITS, max_bytes)
    except BadRequest:
        raise as_zlib from None  # neither: zlib's reason, the format the header claimed


def _zlib_header(data: bytes) -> bool:
    # CMF: method 8 (deflate), a window of at most 32 KiB; CMF and FLG together a multiple of 31 (RFC 1950 §2.2).
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def _whole(data: bytes, wbits: int, max_bytes: int) -> bytes:
    out, rest = _inflate_one(data, wbits, max_bytes, "deflate")
    if rest:
        raise BadRequest(
            f"the body has {len(rest)} bytes after the end of its deflate data (Content-Encoding: deflate)"
        )
    return out


def _inflate_one(data: bytes, wbits: int, max_bytes: int, name: str, used: int = 0) -> tuple[bytes, bytes]:
    """(one stream inflated, the bytes after it), given `used` bytes already inflated before it.

    Never holds more than one byte past the limit: that byte is how a body over it is told apart.
    """
    room = max_bytes - used
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, room + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {name} data (Content-Encoding: {name}): {_reason(exc)}") from None
    if len(out) > room:
        raise PayloadTooLarge(
            f"the body decompresses to more than MAX_BODY_BYTES={max_bytes} bytes: "
            "split the batch into smaller requests"
        )
    if not inflater.eof:  # all of the input read, and the stream has not ended
        raise BadRequest(f"the body is not valid {name} data (Content-Encoding: {name}): it is cut short")
    return out, inflater.unused_data


def _reason(exc: zlib.error) -> str:
    # zlib says "Error -3 while decompressing data: incorrect header check": the part after the colon says why.
    return str(exc).rsplit(": ", 1)[-1]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip: named without q=0 (RFC 9110 §12.5.3)."""
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in _GZIP:
            continue
        q = params.strip().lower()
        if not q.startswith("q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False

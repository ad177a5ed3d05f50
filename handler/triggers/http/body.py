"""HTTP bodies, checked before any route sees them: size, base64, Content-Encoding, JSON parsed strictly, OIP
binary framing.

Any body that parses as JSON is taken whatever its Content-Type (TF Serving's examples use
`curl -d`, which says form-urlencoded); one that does not is a 400 that says so. A body with an
`Inference-Header-Content-Length` header is the Open Inference Protocol's binary tensor data
extension (Triton's clients send it by default): a JSON header and raw tensor bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from handler.core.json_depth import MAX_JSON_DEPTH, nesting
from handler.errors import BadRequest, PayloadTooLarge
from handler.protocols import codings as http_codings
from handler.protocols import oip_binary


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header, whatever its case, from either header map of the event."""
    size = len(name)  # a name of another length cannot match: most keys are never lowered
    for key, value in (event.get("headers") or {}).items():
        if len(key) == size and key.lower() == name:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if len(key) == size and key.lower() == name and values:
            return str(values[0])
    return None


@dataclass(frozen=True)
class Body:
    """The checked body: the event with a text body, or for the binary extension its JSON header and data."""

    event: dict[str, Any]
    binary: tuple[dict[str, Any], bytes] | None = None


def prepare(event: dict[str, Any], max_bytes: int) -> Body:
    """Check the body's size and encoding; decode base64 and any Content-Encoding; split a binary OIP body."""
    body = event.get("body")
    if not body:
        return Body(event)
    encoded = bool(event.get("isBase64Encoded"))
    # A cheap bound first: never decode (or encode) more than the limit allows.
    if len(body) > (max_bytes * 4 // 3 + 4 if encoded else max_bytes):
        raise PayloadTooLarge(f"the body is over MAX_BODY_BYTES={max_bytes}: split the batch into smaller requests")
    length = header(event, oip_binary.HEADER_LENGTH)
    coding = header(event, "content-encoding")
    if coding is not None and http_codings.codings(coding):  # identity alone applies nothing
        return _decoded(event, body, encoded, coding, length, max_bytes)
    if not encoded:
        # ASCII text is as many bytes as characters (isascii() reads a flag): only other text is encoded to count.
        _check_size(len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass")), max_bytes)
        if length is not None:
            return Body(event, oip_binary.split(body.encode("utf-8", "surrogatepass"), length))
        return Body(event)
    raw = _base64(body)
    _check_size(len(raw), max_bytes)
    return _from_bytes(event, raw, length)


def _base64(body: str) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the body is marked isBase64Encoded but is not valid base64") from None


def _decoded(event: dict[str, Any], body: str, encoded: bool, coding: str, length: str | None, max_bytes: int) -> Body:
    """A body with a Content-Encoding: undone here, once, so that every route sees the body as sent.

    The binary extension's header length counts the decompressed body, as Triton's client sends it.
    """
    # A trigger that passed compressed bytes as text has already mangled them: the 400 below says so.
    raw = _base64(body) if encoded else body.encode("utf-8", "surrogatepass")
    try:
        raw = http_codings.decode(raw, coding, max_bytes)
    except BadRequest as exc:
        hint = "" if encoded else " (a compressed body must reach the function base64-encoded)"
        raise BadRequest(exc.message + hint) from None
    return _from_bytes(event, raw, length)


def _from_bytes(event: dict[str, Any], raw: bytes, length: str | None) -> Body:
    """The body from its bytes: the binary extension split, or UTF-8 text for JSON."""
    if length is not None:
        return Body(event, oip_binary.split(raw, length))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "the body is not UTF-8 text, so not JSON: send JSON, or binary tensor data with the "
            f"{oip_binary.HEADER_LENGTH} header (the Open Inference Protocol's binary extension)"
        ) from None
    return Body({**event, "body": text, "isBase64Encoded": False})


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the body is {size} bytes, over MAX_BODY_BYTES={max_bytes}: split the batch into smaller requests"
        )


def not_json(exc: json.JSONDecodeError, content_type: str | None) -> BadRequest:
    """The 400 for a body that does not parse, naming the content type it was sent as when that was not JSON."""
    sent_as = f" (sent as Content-Type {content_type!r})" if content_type and "json" not in content_type.lower() else ""
    return BadRequest(f"the body is not valid JSON{sent_as}: {exc.msg} at position {exc.pos}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a client that sends two would get an answer to half its request.
    out = dict(pairs)  # in C; the loop below runs only to name the key sent twice
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadRequest(f"the body has the key {key!r} twice in one object: send each key once")
        seen.add(key)
    return out  # unreachable: a shorter dict means a repeated key


_REFUSED = object()


def parse_json_body(text: str) -> Any:
    """The resolvers' JSON parser: json.loads, with a 400 for what it would crash on or silently drop.

    Malformed JSON still raises json.JSONDecodeError, which Powertools reports with its position.

    A body of a few arrays and objects goes through `_parse_checked`, which checks every key as it is
    parsed. A larger one is parsed once by json.loads alone: a key sent twice is found by counting, since
    each member of an object has one ':' outside strings, so a body with as many ':' as its objects'
    members has no repeated key (and no ':' inside a string). Any other body, and any body json.loads
    refuses, goes through `_parse_checked` too, which raises the same error the checks always raised.
    """
    brackets = text.count("["), text.count("{")
    if sum(brackets) <= MAX_JSON_DEPTH:
        # Too few arrays and objects to nest too deep: the checked parse alone, one hook call per object.
        return _parse_checked(text, deep=False)
    try:
        value = json.loads(text)
    except (RecursionError, ValueError):  # JSONDecodeError is a ValueError
        value = _REFUSED
    if value is _REFUSED:  # outside the except block: the error raised carries no other as its context
        return _parse_checked(text)
    depth, members = nesting(value, text, brackets)
    if members != text.count(":"):
        return _parse_checked(text)
    if depth > MAX_JSON_DEPTH:
        raise _too_deep()
    return value


def _too_deep() -> BadRequest:
    return BadRequest(
        f"the body is nested more than {MAX_JSON_DEPTH} levels deep: a request is an object of arrays of rows"
    )


def _parse_checked(text: str, deep: bool = True) -> Any:
    """json.loads with every key checked as it is parsed: what names a repeated key, or the parser's own error.

    `deep=False`: the text has too few '[' and '{' to nest past MAX_JSON_DEPTH, so the depth is not walked.
    """
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        # Python refuses integer literals over 4300 digits (int_max_str_digits) with a plain ValueError.
        raise BadRequest("the body has a number with too many digits: send numbers as JSON floats") from None
    if deep and nesting(value, text)[0] > MAX_JSON_DEPTH:
        raise _too_deep()
    return value

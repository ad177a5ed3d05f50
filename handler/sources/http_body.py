"""HTTP bodies, checked before any route sees them: size, base64, JSON parsed strictly, OIP binary framing.

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

from handler.errors import BadRequest, PayloadTooLarge
from handler.sources import oip_binary


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header, whatever its case, from either header map of the event."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name and values:
            return str(values[0])
    return None


@dataclass(frozen=True)
class Body:
    """The checked body: the event with a text body, or for the binary extension its JSON header and data."""

    event: dict[str, Any]
    binary: tuple[dict[str, Any], bytes] | None = None


def prepare(event: dict[str, Any], max_bytes: int) -> Body:
    """Check the body's size and encoding; decode base64; split a binary OIP body."""
    body = event.get("body")
    if not body:
        return Body(event)
    encoded = bool(event.get("isBase64Encoded"))
    # A cheap bound first: never decode (or encode) more than the limit allows.
    if len(body) > (max_bytes * 4 // 3 + 4 if encoded else max_bytes):
        raise PayloadTooLarge(f"the body is over MAX_BODY_BYTES={max_bytes}: split the batch into smaller requests")
    if encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is marked isBase64Encoded but is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"the body is {len(raw)} bytes, over MAX_BODY_BYTES={max_bytes}: split the batch into smaller requests"
        )
    length = header(event, oip_binary.HEADER_LENGTH)
    if length is not None:
        return Body(event, oip_binary.split(raw, length))
    if not encoded:
        return Body(event)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "the body is not UTF-8 text, so not JSON: send JSON, or binary tensor data with the "
            f"{oip_binary.HEADER_LENGTH} header (the Open Inference Protocol's binary extension)"
        ) from None
    return Body({**event, "body": text, "isBase64Encoded": False})


def not_json(exc: json.JSONDecodeError, content_type: str | None) -> BadRequest:
    """The 400 for a body that does not parse, naming the content type it was sent as when that was not JSON."""
    sent_as = f" (sent as Content-Type {content_type!r})" if content_type and "json" not in content_type.lower() else ""
    return BadRequest(f"the body is not valid JSON{sent_as}: {exc.msg} at position {exc.pos}")


# The deepest a request needs is 5 (an OIP v2 tensor with 2-D nested data); allow room, refuse the absurd.
MAX_JSON_DEPTH = 32


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a client that sends two would get an answer to half its request.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"the body has the key {key!r} twice in one object: send each key once")
        out[key] = value
    return out


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: a deep value must not exhaust the stack here either)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, (list, dict)))
    return deepest


def parse_json_body(text: str) -> Any:
    """The resolvers' JSON parser: json.loads, with a 400 for what it would crash on or silently drop.

    Malformed JSON still raises json.JSONDecodeError, which Powertools reports with its position.
    """
    too_deep = BadRequest(
        f"the body is nested more than {MAX_JSON_DEPTH} levels deep: a request is an object of arrays of rows"
    )
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise too_deep from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        # Python refuses integer literals over 4300 digits (int_max_str_digits) with a plain ValueError.
        raise BadRequest("the body has a number with too many digits: send numbers as JSON floats") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value

"""Fixtures for hostile input: the functions (one per model and runtime, built once per session), requests through
their Lambda handlers, captured logs, and the checks every error answer must pass: its exact status and code, our
error shape, no stack trace or file path, none of the request's values (names may be echoed, values never)."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.hostile.bad_input import CODES
from tests.support import zoo
from tests.support.http_events import body_of

# What an answer or a log line must never show: a stack trace or a file path of the server.
_LEAK = re.compile(
    r"Traceback|File \"|site-packages|\.py\b|/usr/(lib|local)|/opt/|/var/task|/tmp/|" + re.escape(str(ROOT))
)
# Keys whose string values are protocol names, not the client's data: an OIP tensor's name and datatype.
_NAME_KEYS = ("name", "datatype")
# The protocols' own field names (TF Serving v1, OIP v2), which a 422 may name.
PROTOCOL_NAMES = {"instances", "inputs", "signature_name", "name", "shape", "datatype", "data", "parameters", "id"}


def leaks(text: str) -> list[str]:
    """Stack-trace and file-path fragments found in `text`."""
    return [m.group(0) for m in _LEAK.finditer(text)]


def _walk(value: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    stack: list[tuple[str | None, Any]] = [(key, value)]
    while stack:
        k, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((str(kk), vv) for kk, vv in v.items())
            yield k, None
        elif isinstance(v, list):
            stack.extend((k, vv) for vv in v)
        else:
            yield k, v


def _names(model: str) -> set[str]:
    sig = zoo.manifest(model)["signature"]
    out = {s["name"] for side in ("features", "inputs", "outputs") for s in sig[side]}
    for f in sig["features"]:
        out.update(f.get("vocabulary") or ())  # the model's own categories may be listed as the valid ones
    return out


def _distinctive(text: str) -> bool:
    """A string that cannot be a word of the server's own messages: 6+ characters with one that is not a
    lowercase letter, an underscore, a space or an apostrophe (planted secrets have digits), or 16+ characters."""
    return len(text) >= 16 or (len(text) >= 6 and re.search(r"[^a-z_ ']", text) is not None)


def request_values(text: str | None, model: str) -> set[str]:
    """The request's distinctive values as they would be spelled if quoted back: distinctive strings that are not
    names of the model, floats with a fraction, integers of 5+ digits. Keys are names, not values."""
    if not text:
        return set()
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return set()
    names = _names(model) | request_names(text)  # a value spelled like a name the request also uses is a name
    found: set[str] = set()
    for key, v in _walk(body):
        if isinstance(v, str) and _distinctive(v) and v not in names and key not in _NAME_KEYS:
            found.add(v)
        elif isinstance(v, float) and math.isfinite(v) and not v.is_integer():
            found.add(repr(v))
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
            found.add(str(v))
    return found


def _readable(text: str) -> str:
    """JSON text (or JSON lines) with its escapes decoded: "\\u00b13.4" must read as "±3.4", not as "13.4"."""
    out = []
    for line in text.splitlines() or [text]:
        try:
            out.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            out.append(line)
    return "\n".join(out)


def quoted(values: Iterator[str] | tuple[str, ...] | set[str] | list[str], text: str) -> list[str]:
    """The values that `text` quotes, each as a whole token: a number not inside another number, a string not
    inside a word of the server's own text (a drawn "invali" is not quoted by "invalid_input")."""
    readable = _readable(text)
    found = []
    for v in values:
        if re.fullmatch(r"[-+0-9.e]+", v):
            pattern = r"(?<![\w.])" + re.escape(v) + r"(?![\w])"
        else:
            before = r"(?<!\w)" if re.match(r"\w", v) else ""
            after = r"(?!\w)" if re.search(r"\w$", v) else ""
            pattern = before + re.escape(v) + after
        if re.search(pattern, readable) or re.search(pattern, text):
            found.append(v)
    return found


def request_names(text: str | None) -> set[str]:
    """Every key of the request's objects and every OIP tensor name: what an answer may echo."""
    try:
        body = json.loads(text or "")
    except (ValueError, RecursionError):
        return set()
    keys: set[str] = set()
    stack = [body]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            keys.update(str(k) for k in v)
            if isinstance(v.get("inputs"), list):
                # OIP tensors' names as the server spells them: str() of a name that is not a string, and
                # 'None' for a tensor without one (reported: the tensor's position would say more).
                keys.update(str(t.get("name")) for t in v["inputs"] if isinstance(t, dict))
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return keys


def check_error(
    response: dict[str, Any], status: int, model: str, request_text: str | None, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An error answer of exactly `status`, in our shape, that leaks nothing and names only names."""
    got = response["statusCode"]
    assert got == status, f"expected {status}, got {got}: {response['body']!r:.600}"
    raw = response["body"]
    body = body_of(response)
    assert body["code"] == CODES[status] and isinstance(body["error"], str) and body["error"], body
    allowed = {"error", "code"} | ({"details", "details_truncated"} if status == 422 else set())
    assert set(body) <= allowed, body
    assert not leaks(raw), f"the answer shows {leaks(raw)}: {raw[:600]}"
    echoed = quoted((*secrets, *request_values(request_text, model)), raw)
    assert not echoed, f"the answer quotes the request's values {echoed!r:.300}: {raw[:600]}"
    if status == 422:
        names = _names(model) | request_names(request_text) | PROTOCOL_NAMES
        for d in body["details"]:
            assert set(d) == {"instance", "feature", "reason"}, d
            assert d["instance"] is None or (type(d["instance"]) is int and d["instance"] >= 0), d
            feature = d["feature"]
            # A name of the model or of the request (a pydantic path is names and positions joined by dots), or
            # `inputs[i]`: an OIP tensor sent without a name is named by its position.
            assert (
                feature is None
                or feature in names
                or all(p in names or p.isdigit() for p in feature.split("."))
                or re.fullmatch(r"inputs\[\d+\]", feature)
            ), d
    return body


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the service logs (Powertools JSON, with exceptions formatted), while the test runs."""
    from handler.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    try:
        yield stream
    finally:
        target.removeHandler(handler)


def log_records(stream: io.StringIO) -> list[dict[str, Any]]:
    """The captured log lines, parsed."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

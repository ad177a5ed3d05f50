"""The status an HTTP request must get, by its class, from the README's route table and error rules, written apart
from the server's router: the fuzz judges every generated request with it (issue 15: "any 2xx or 4xx" let a
400-to-404 regression through).

- a path no route has: 404; a path some route has, with another method: 405;
- a route naming another model, version (the served one is "1") or label (MODEL_LABELS: "stable"): 404;
- GET routes of the served model, and the health and server routes: 200;
- POST predict or infer: no body, not JSON, a key twice, nesting over 32 levels, or not an object: 400;
  then the v1 body rules (tests/hostile/test_any_body_properties.py) or the v2 ones: 422 when `inputs` is
  not a non-empty array, else 200 or 422, or 400 when `outputs` (the outputs to answer with) is given;
- :classify on a model exported without class_names (every reference model): 400.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

SERVED_VERSION = "1"
LABELS = ("stable",)
MAX_DEPTH = 32
_SEG = r"(?P<{}>[^/:]+)"


def _route(pattern: str) -> re.Pattern[str]:
    out = re.escape(pattern)
    for param in ("name", "version", "label"):
        out = out.replace(re.escape("{" + param + "}"), _SEG.format(param))
    return re.compile("^" + out + "$")


# (method, path, what it is), as the README and the OpenAPI document list them.
ROUTES = [
    (m, _route(p), kind)
    for m, p, kind in (
        ("POST", "/v1/models/{name}:predict", "predict"),
        ("POST", "/v1/models/{name}/versions/{version}:predict", "predict"),
        ("POST", "/v1/models/{name}/labels/{label}:predict", "predict"),
        ("POST", "/v1/models/{name}:classify", "classify"),
        ("POST", "/predict", "predict"),
        ("GET", "/v1/models/{name}", "get"),
        ("GET", "/v1/models/{name}/versions/{version}", "get"),
        ("GET", "/v1/models/{name}/labels/{label}", "get"),
        ("GET", "/v1/models/{name}/metadata", "get"),
        ("GET", "/v1/models/{name}/versions/{version}/metadata", "get"),
        ("GET", "/v1/models/{name}/labels/{label}/metadata", "get"),
        ("GET", "/v2", "get"),
        ("POST", "/v2/models/{name}/infer", "infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer", "infer"),
        ("GET", "/v2/models/{name}", "get"),
        ("GET", "/v2/models/{name}/versions/{version}", "get"),
        ("GET", "/v2/models/{name}/ready", "get"),
        ("GET", "/v2/models/{name}/versions/{version}/ready", "get"),
        ("GET", "/v2/health/live", "get"),
        ("GET", "/v2/health/ready", "get"),
        ("GET", "/openapi.json", "get"),
    )
]


def depth(value: Any) -> int:
    """How deep JSON containers nest (README: over 32 levels is a 400)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend((c, level + 1) for c in (item.values() if isinstance(item, dict) else item))
    return deepest


def no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook refusing a key twice in one object (README: a 400)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key twice")
    return dict(pairs)


def body_statuses(kind: str, raw: bytes) -> set[int]:
    """The statuses a predict or infer body may get, by its class."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {400}
    if not text.strip():
        return {400}
    try:
        body = json.loads(text, object_pairs_hook=no_twice)
    except (ValueError, RecursionError):
        return {400}
    if depth(body) > MAX_DEPTH or not isinstance(body, dict):
        return {400}
    if kind == "infer":
        inputs = body.get("inputs")
        if not (isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs)):
            return {422}
        return {200, 422} if body.get("outputs") is None else {200, 400, 422}
    if ("instances" in body) == ("inputs" in body):
        return {422}
    if body.get("signature_name") not in (None, "", "serving_default"):
        return {400}
    if set(body) - {"instances", "inputs", "signature_name"}:
        return {422}
    return {200, 422}


def expected_statuses(method: str, url: str, body: bytes | str | None, served: str) -> set[int]:
    """The statuses a request (as sent: method, URL, body) may get from a function serving `served`."""
    path = urlsplit(url).path
    matches = [(m, rx.match(path), kind) for m, rx, kind in ROUTES]
    found = [(m, match, kind) for m, match, kind in matches if match]
    if not found:
        # A name holding ':' matches no route by our table; the server's router takes it as a name: 404 too.
        return {404}
    mine = [(match, kind) for m, match, kind in found if m == method]
    if not mine:
        return {405}
    match, kind = mine[0]
    params = match.groupdict()
    if params.get("name", served) != served:
        return {404}
    if params.get("version", SERVED_VERSION) != SERVED_VERSION or params.get("label", LABELS[0]) not in LABELS:
        return {404}
    if kind == "get":
        return {200}
    if kind == "classify":
        return {400}
    raw = body.encode() if isinstance(body, str) else (body or b"")
    return body_statuses(kind, raw)

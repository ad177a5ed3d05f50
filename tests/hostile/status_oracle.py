"""The status an HTTP request must get, by its class, from the README's route table and error rules, written apart
from the server's router: the fuzz judges every generated request with it (issue 15: "any 2xx or 4xx" let a
400-to-404 regression through).

- a path no route has: 404; a path some route has, with another method: 405;
- a route naming another model, version (the served one is "1") or label (MODEL_LABELS: "stable"): 404;
- GET routes of the served model, and the health and server routes: 200;
- POST predict or infer: no body, not JSON, a key twice, nesting over 32 levels, or not an object: 400;
  then the v1 body rules (tests/hostile/test_any_body_properties.py) or the v2 ones: 422 when `inputs` is
  not a non-empty array, else 200 or 422, or 400 when `outputs` (the outputs to answer with) is given or
  the request's `id` (the rows' inference id) is not 1 to 1,024 characters without a control character;
- :classify (under the name, a version or a label) on a model exported without class_names (every reference
  model): 400; :regress on a model without one scalar output (recommender: two outputs): 400;
- :regress otherwise: a body that is not a JSON object (as above), without an `examples` array, or with a
  `context` that is not an object or a `signature_name` other than serving_default: 400; an example that is
  not an object: 422; else 200 or 422 (the v1 body rules);
- Triton's repository index: an empty body or an object whose `ready` (if given) is true/false: 200, any other
  body 400; its model config and statistics: GET routes, as above.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from tests.support import zoo

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
        ("POST", "/v1/models/{name}/versions/{version}:classify", "classify"),
        ("POST", "/v1/models/{name}/labels/{label}:classify", "classify"),
        ("POST", "/v1/models/{name}:regress", "regress"),
        ("POST", "/v1/models/{name}/versions/{version}:regress", "regress"),
        ("POST", "/v1/models/{name}/labels/{label}:regress", "regress"),
        ("POST", "/predict", "predict"),
        ("GET", "/", "get"),
        ("GET", "/v1/models/{name}", "get"),
        ("GET", "/v1/models/{name}/versions/{version}", "get"),
        ("GET", "/v1/models/{name}/labels/{label}", "get"),
        ("GET", "/v1/models/{name}/metadata", "get"),
        ("GET", "/v1/models/{name}/versions/{version}/metadata", "get"),
        ("GET", "/v1/models/{name}/labels/{label}/metadata", "get"),
        ("GET", "/v2", "get"),
        ("GET", "/v2/models/stats", "get"),  # before /v2/models/{name}: a fixed path is the router's first choice
        ("POST", "/v2/models/{name}/infer", "infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer", "infer"),
        ("GET", "/v2/models/{name}", "get"),
        ("GET", "/v2/models/{name}/versions/{version}", "get"),
        ("GET", "/v2/models/{name}/ready", "get"),
        ("GET", "/v2/models/{name}/versions/{version}/ready", "get"),
        ("GET", "/v2/health/live", "get"),
        ("GET", "/v2/health/ready", "get"),
        ("GET", "/v2/models/{name}/config", "get"),
        ("GET", "/v2/models/{name}/versions/{version}/config", "get"),
        ("GET", "/v2/models/{name}/stats", "get"),
        ("GET", "/v2/models/{name}/versions/{version}/stats", "get"),
        ("POST", "/v2/repository/index", "index"),
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


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None where it is a 400: not UTF-8, empty, not JSON, too deep, not an object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return None
    try:
        body = json.loads(text, object_pairs_hook=no_twice)
    except (ValueError, RecursionError):
        return None
    if depth(body) > MAX_DEPTH or not isinstance(body, dict):
        return None
    return body


def one_scalar_output(model: str) -> bool:
    """The model answers one score per example (one output of shape [] or [1]): what :regress is for."""
    outputs = zoo.manifest(model)["signature"]["outputs"]
    return len(outputs) == 1 and outputs[0]["shape"] in ([], [1]) and outputs[0]["dtype"] != "string"


def examples_statuses(raw: bytes) -> set[int]:
    """The statuses of a :regress body (TF Serving's `{"signature_name"?, "context"?, "examples": [...]}`)."""
    body = json_object(raw)
    if body is None or not isinstance(body.get("examples"), list):
        return {400}
    if body.get("context") is not None and not isinstance(body["context"], dict):
        return {400}
    if not all(isinstance(e, dict) for e in body["examples"]):
        return {422}
    if body.get("signature_name") not in (None, "", "serving_default"):
        return {400}
    return {200, 422}


def index_statuses(raw: bytes) -> set[int]:
    """Triton's repository index: no body, or an object with an optional boolean `ready`."""
    if not raw.strip():
        return {200}
    body = json_object(raw)
    if body is None or ("ready" in body and not isinstance(body["ready"], bool)):
        return {400}
    return {200}


def _inference_id(value: Any) -> bool:
    """OIP's request `id` names the rows (docs/http-api.md): 1 to 1,024 characters, no control character."""
    if value is None:
        return True
    return isinstance(value, str) and 0 < len(value) <= 1024 and re.search(r"[\x00-\x1f\x7f-\x9f]", value) is None


def body_statuses(kind: str, raw: bytes) -> set[int]:
    """The statuses a predict or infer body may get, by its class."""
    body = json_object(raw)
    if body is None:
        return {400}
    if kind == "infer":
        inputs = body.get("inputs")
        if not (isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs)):
            return {422}
        if "id" in body and not _inference_id(body["id"]):  # checked once the inputs are: a 422 comes first
            return {400, 422}
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
    if kind == "classify" or (kind == "regress" and not one_scalar_output(served)):
        return {400}
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if kind == "regress":
        return examples_statuses(raw)
    if kind == "index":
        return index_statuses(raw)
    return body_statuses(kind, raw)

"""Build HTTP events of every trigger from the sample events in events/, and read their answers."""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"

HTTP_TRIGGERS = ("rest", "http", "function_url", "alb")
TEMPLATES = {
    "rest": "api_gateway_rest.json",
    "http": "http_api.json",
    "function_url": "function_url.json",
    "alb": "alb.json",
}


@cache
def _template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of events/<name>."""
    return copy.deepcopy(_template(name))


def http_event(
    trigger: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """The trigger's sample event, re-aimed at `method path` with `body` (a str is sent as is)."""
    ev = sample_event(TEMPLATES[trigger])
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    if trigger == "rest":
        ev["httpMethod"] = method
        ev["path"] = path
        ev["pathParameters"] = {"proxy": path.lstrip("/")}
        ev["requestContext"]["httpMethod"] = method
        ev["requestContext"]["path"] = f"/{ev['requestContext']['stage']}{path}"
    elif trigger == "alb":
        ev["httpMethod"] = method
        ev["path"] = path
    else:
        ev["rawPath"] = path
        ev["requestContext"]["http"]["method"] = method
        ev["requestContext"]["http"]["path"] = path
    # Only requests with a body carry its type and length.
    hdrs = {k: v for k, v in ev["headers"].items() if k.lower() not in ("content-type", "content-length")}
    if text is not None:
        hdrs["content-type" if trigger != "rest" else "Content-Type"] = "application/json"
    for k, v in (headers or {}).items():
        hdrs = {hk: hv for hk, hv in hdrs.items() if hk.lower() != k.lower()}
        hdrs[k if trigger == "rest" else k.lower()] = v
    ev["headers"] = hdrs
    if trigger == "rest":
        ev["multiValueHeaders"] = {k: [v] for k, v in hdrs.items()}
    if text is None:
        if trigger == "alb":
            ev["body"] = ""
        elif trigger == "rest":
            ev["body"] = None
        else:
            ev.pop("body", None)
        ev["isBase64Encoded"] = False
    elif base64_body:
        ev["body"] = base64.b64encode(text.encode()).decode()
        ev["isBase64Encoded"] = True
    else:
        ev["body"] = text
        ev["isBase64Encoded"] = False
    return ev


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, from `headers` or `multiValueHeaders`, case-insensitively."""
    for k, v in (response.get("headers") or {}).items():
        if k.lower() == name.lower():
            return str(v)
    for k, values in (response.get("multiValueHeaders") or {}).items():
        if k.lower() == name.lower():
            return ", ".join(str(v) for v in values)
    return None


def body_of(response: dict[str, Any]) -> Any:
    """The JSON body of an HTTP response dict."""
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)

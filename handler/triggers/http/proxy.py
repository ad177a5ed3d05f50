"""The four HTTP triggers' events in and answers out: API Gateway's REST API (payload 1.0), its HTTP API and
Function URLs (2.0), and ALB.

What Powertools' resolvers did for us, in the few lines of it we use: importing `aws_lambda_powertools.
event_handler` imports every resolver Powertools has and every event class it knows (AppSync's asyncio among
them), about 40 ms of a cold start whose floor is about 100 ms on LiteRT (issue 24). The rules are
Powertools' own, so every trigger answers exactly as before:

- the method and path an event asks for (an HTTP API's stage is cut off its path, as Powertools does);
- the answer's dict: `statusCode`, `body` (a JSON body serialized compactly, bytes base64-encoded),
  `isBase64Encoded` and the headers as each trigger takes them (`multiValueHeaders` for a REST API and for
  an ALB that sends them, single `headers` otherwise, `cookies` for payload 2.0).

`/openapi.json` is still Powertools' (`openapi.py`), made when first asked for.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections import defaultdict
from functools import cached_property
from typing import Any, Literal

from handler.triggers.http.body import parse_json_body

HttpTrigger = Literal["rest", "http", "function_url", "alb"]
APPLICATION_JSON = "application/json"


class Headers(dict[str, str]):
    """A request's headers, read whatever their case (as Powertools' CaseInsensitiveDict reads them)."""

    def __init__(self, headers: dict[str, str] | None) -> None:
        super().__init__((str(k).lower(), v) for k, v in (headers or {}).items())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class Request:
    """One HTTP event as a route reads it: method, path, headers, body (and the body's JSON, parsed once)."""

    def __init__(self, trigger: HttpTrigger, event: dict[str, Any]) -> None:
        self.trigger = trigger
        self.raw_event = event

    @property
    def http_method(self) -> str:
        if self.trigger in ("http", "function_url"):
            return str(self.raw_event["requestContext"]["http"]["method"])
        return str(self.raw_event["httpMethod"])

    @property
    def path(self) -> str:
        if self.trigger in ("http", "function_url"):
            raw_path = str(self.raw_event["rawPath"])
            stage = self.raw_event["requestContext"]["stage"]
            return raw_path[len("/" + stage) :] if stage != "$default" else raw_path
        return str(self.raw_event["path"])

    @property
    def headers(self) -> Headers:
        return Headers(self.raw_event.get("headers"))

    @property
    def body(self) -> str | None:
        body: str | None = self.raw_event.get("body")
        return body

    @cached_property
    def decoded_body(self) -> str | None:
        body = self.body
        if self.raw_event.get("isBase64Encoded") and body:
            return base64.b64decode(body.encode()).decode()
        return body

    @cached_property
    def json_body(self) -> Any:
        """The body parsed by `body.parse_json_body` (None without a body); malformed JSON raises JSONDecodeError."""
        decoded = self.decoded_body
        return parse_json_body(decoded) if decoded else None


class Response:
    """An answer: status, content type, body (JSON-serialized if it is not text or bytes), headers; `compress`
    says whether to gzip it (None: `HttpApi` decides from its size and the request's Accept-Encoding)."""

    def __init__(
        self,
        status_code: int,
        content_type: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        compress: bool | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.compress = compress
        if content_type:
            self.headers.setdefault("Content-Type", content_type)

    def is_json(self) -> bool:
        return self.headers.get("Content-Type", "").startswith(APPLICATION_JSON)


def _default(value: Any) -> Any:
    # What Powertools' Encoder adds to json.dumps: decimals and dataclasses.
    import decimal  # lazily: ~2 ms to import, for answers that hold none

    if isinstance(value, decimal.Decimal):
        return math.nan if value.is_nan() else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def serialize(body: Any) -> str:
    """A route's answer as JSON text, compact, as Powertools serializes it."""
    return json.dumps(body, separators=(",", ":"), default=_default)


def proxy_response(trigger: HttpTrigger, event: dict[str, Any], response: Response) -> dict[str, Any]:
    """The answer as the trigger takes it back; the body already serialized (and compressed, if it is)."""
    body = response.body
    encoded = isinstance(body, bytes)
    if encoded:
        body = base64.b64encode(body).decode()
    answer = {"statusCode": response.status_code, "body": body, "isBase64Encoded": encoded}
    headers = response.headers
    if trigger == "rest" or (trigger == "alb" and event.get("multiValueHeaders")):
        multi: dict[str, list[str]] = defaultdict(list)
        for key, value in headers.items():
            multi[key].append(value)
        answer["multiValueHeaders"] = multi
    elif trigger == "alb":
        answer["headers"] = dict(headers)
    else:
        answer["headers"] = dict(headers)
        answer["cookies"] = []
    return answer

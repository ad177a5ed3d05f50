"""HTTP triggers (API Gateway REST and HTTP APIs, Function URL, ALB): one set of routes, answered alike.

The route tables (`endpoints_v1.py`: TF Serving REST; `endpoints_v2.py`: Open Inference Protocol v2) are one
`Table`, matched by Powertools' rules (`routes.py`); each trigger's event is read and answered in its own shape by
`proxy.py`. Bodies are checked first (`body.py`: size, content coding, base64, the binary extension). Powertools'
resolvers are not on the request path (importing them took about 40 ms of every cold start): only
`/openapi.json` is made by one, when first asked for, from the same table (`openapi.py`). There is no request
validation but the coercer's, which checks every body with better messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from handler.bootstrap import Started
from handler.core.service import Service
from handler.errors import NotFound, SkewlessError
from handler.observability import count_5xx, count_internal_error, logger
from handler.protocols import codings as http_codings
from handler.protocols.oip import V2Protocol
from handler.settings import Settings
from handler.triggers.http import body as http_body
from handler.triggers.http import endpoints_v1, endpoints_v2
from handler.triggers.http.errors import MethodNotAllowed, error_response
from handler.triggers.http.proxy import APPLICATION_JSON, HttpTrigger, Request, Response, proxy_response, serialize
from handler.triggers.http.routes import Call, Table

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

# Answers under 1 KiB go out as they are: with their headers they fit one TCP segment (about 1,460 bytes)
# compressed or not, so gzip would save no packet, only cost time at both ends (CloudFront's floor is 1,000 bytes).
MIN_COMPRESSED_BYTES = 1024
# zlib level 1, not Powertools' 9: on a 4 MB JSON answer it took 0.10 s instead of 0.88 s, for 8% more bytes.
GZIP_LEVEL = 1
# API Gateway REST APIs send a base64 answer as binary only for BinaryMediaTypes (application/octet-stream here):
# a gzip'd JSON answer would reach the client as base64 text. The REST API compresses answers itself
# (MinimumCompressionSize in template.yaml).
COMPRESSING_TRIGGERS = frozenset({"http", "function_url", "alb"})


class HttpApi:
    """Every protocol's routes, for the four HTTP triggers, bound to one service (or its startup error)."""

    def __init__(self, started: Started, settings: Settings) -> None:
        self.started = started
        self.settings = settings
        self.table = Table(endpoints_v1.ROUTES, endpoints_v2.ROUTES)
        self.v2 = V2Protocol(started.service) if started.service is not None else None
        self._openapi: dict[str, str] = {}

    @property
    def service(self) -> Service | None:
        return self.started.service

    def handle(self, trigger: HttpTrigger, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one HTTP event of the given trigger, as that trigger expects the response."""
        try:
            body = http_body.prepare(event, self.settings.max_body_bytes)
        except SkewlessError as exc:
            request_id = str(getattr(context, "aws_request_id", "unknown"))
            response = _serialized(error_response(exc, request_id))
            answer = proxy_response(trigger, event, response)
        else:
            answer = self._resolve(trigger, body.event, context, body.binary)
        if answer.get("statusCode", 200) >= 500:  # every 5xx, however it was made: the canary's alarm counts them
            count_5xx()
        return answer

    def _resolve(
        self, trigger: HttpTrigger, event: dict[str, Any], context: Any, binary: tuple[dict[str, Any], bytes] | None
    ) -> dict[str, Any]:
        """The route's answer (or the error's), compressed if it is large and the client takes gzip."""
        request = Request(trigger, event)
        method, path = request.http_method.upper(), request.path  # a malformed event fails here, as in Powertools
        try:
            found = self.table.match(method, path)
            if found is None:
                result: Any = self._not_found(request, context)
            else:
                route, parameters = found
                result = route.endpoint(Call(self, trigger, request, context, binary), **parameters)
            response = result if isinstance(result, Response) else Response(200, APPLICATION_JSON, result)
        except Exception as exc:  # noqa: BLE001  (every error is answered in our shape; a fault's trace is logged)
            response = self._error(exc, context)
        _serialized(response)
        if trigger in COMPRESSING_TRIGGERS:
            _compress(response, event)
        return proxy_response(trigger, event, response)

    def _not_found(self, request: Request, context: Any) -> Response:
        method, path = request.http_method.upper(), request.path
        allow = self.table.allowed_methods(path)
        if allow and method not in allow:
            return _answer(MethodNotAllowed(method, path, allow), context)
        return _answer(NotFound(f"no route {method} {path}: see GET /openapi.json for the routes"), context)

    @staticmethod
    def _error(exc: Exception, context: Any) -> Response:
        """An error raised by a route, in our shape: a SkewlessError as its status says, anything else a 500."""
        if isinstance(exc, SkewlessError):
            return _answer(exc, context)  # a 5xx's message is logged there, under the request id
        # The stack trace goes to the log (called within the except block: it is the exception logged), never
        # to the client.
        request_id = str(getattr(context, "aws_request_id", "unknown"))
        logger.exception("unexpected error while answering a request", extra={"request_id": request_id})
        count_internal_error()
        error = SkewlessError(f"unexpected {type(exc).__name__}: its trace is logged with this request id")
        return _answer(error, context)

    def openapi_json(self, trigger: str) -> str:
        """The OpenAPI document Powertools generates from the route tables (built once per trigger, when asked)."""
        if trigger not in self._openapi:
            from handler.triggers.http.openapi import document  # lazily: Powertools and pydantic only for this

            m = self.service.artifacts.manifest if self.service is not None else None
            self._openapi[trigger] = document(_resolver(trigger), self.table.routes, m)
        return self._openapi[trigger]


def _answer(exc: SkewlessError, context: Any) -> Response:
    return error_response(exc, str(getattr(context, "aws_request_id", "unknown")))


def _serialized(response: Response) -> Response:
    """A JSON answer's body as JSON text (text and bytes are sent as they are)."""
    if response.is_json() and not isinstance(response.body, str):
        response.body = serialize(response.body)
    return response


def _compress(response: Response, event: dict[str, Any]) -> None:
    """Gzip an answer of MIN_COMPRESSED_BYTES or more for a client that takes gzip (at GZIP_LEVEL).

    Only once the body is serialized and its size known is Accept-Encoding read (with its q-values, in any case:
    Powertools' own check looked for "gzip" as written, so took "gzip;q=0" and refused "GZIP"); a smaller answer
    never reads the request's headers. An answer that says itself whether to compress is obeyed.
    """
    body = response.body
    if response.compress is None and body is not None and len(body) >= MIN_COMPRESSED_BYTES:
        response.headers["Vary"] = "Accept-Encoding"  # for caches: this answer depends on it
        response.compress = http_codings.accepts_gzip(http_body.header(event, "accept-encoding"))
    if not response.compress or body is None:
        return
    response.headers["Content-Encoding"] = "gzip"
    gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    response.body = gzip.compress(body.encode() if isinstance(body, str) else body) + gzip.flush()


def _resolver(trigger: str) -> ApiGatewayResolver:
    """A Powertools resolver of the trigger's kind, for the OpenAPI document it generates."""
    from aws_lambda_powertools.event_handler import (
        ALBResolver,
        APIGatewayHttpResolver,
        APIGatewayRestResolver,
        LambdaFunctionUrlResolver,
    )

    kinds: dict[str, Callable[..., ApiGatewayResolver]] = {
        "rest": APIGatewayRestResolver,
        "http": APIGatewayHttpResolver,
        "function_url": LambdaFunctionUrlResolver,
        "alb": ALBResolver,
    }
    return kinds[trigger](enable_validation=False, json_body_deserializer=http_body.parse_json_body)

"""HTTP triggers (API Gateway REST and HTTP APIs, Function URL, ALB): Powertools resolvers, one set of routes.

The route tables (`endpoints_v1.py`: TF Serving REST; `endpoints_v2.py`: Open Inference Protocol v2) are
registered on the four resolvers, so every trigger answers alike. Bodies are checked first (`body.py`:
size, content coding, base64, the binary extension); a binary body travels in the resolver's context for
that one request. Powertools' request validation is off: the coercer checks every body with better
messages, and validating twice cost more than the model.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.event_handler import (
    ALBResolver,
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.utilities.data_classes import (
    ALBEvent,
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    LambdaFunctionUrlEvent,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

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
from handler.triggers.http.routes import Call, Route, Table

HttpTrigger = Literal["rest", "http", "function_url", "alb"]

_RESOLVERS: dict[HttpTrigger, tuple[type[ApiGatewayResolver], type[BaseProxyEvent]]] = {
    "rest": (APIGatewayRestResolver, APIGatewayProxyEvent),
    "http": (APIGatewayHttpResolver, APIGatewayProxyEventV2),
    "function_url": (LambdaFunctionUrlResolver, LambdaFunctionUrlEvent),
    "alb": (ALBResolver, ALBEvent),
}

# Answers under 1 KiB go out as they are: with their headers they fit one TCP segment (about 1,460 bytes)
# compressed or not, so gzip would save no packet, only cost time at both ends (CloudFront's floor is 1,000 bytes).
MIN_COMPRESSED_BYTES = 1024
# zlib level 1, not Powertools' 9: on a 4 MB JSON answer it took 0.10 s instead of 0.88 s, for 8% more bytes.
GZIP_LEVEL = 1


class _ResponseBuilder(ResponseBuilder[Any]):
    """Powertools' response builder: answers of MIN_COMPRESSED_BYTES or more gzip'd for a client that asks.

    No route sets `compress`: once the body is serialized and its size known, `_route` reads Accept-Encoding
    and sets the answer's own `compress`, which Powertools obeys (it gzips, and says so in Content-Encoding). A
    smaller answer never reads the request's headers: Powertools' own check would build a case-insensitive copy
    of all of them (twice) only to find compression off.
    """

    compresses = True

    def _route(self, event: Any, cors: Any) -> None:
        body = self.response.body
        if self._may_compress() and body is not None and len(body) >= MIN_COMPRESSED_BYTES:
            self.response.headers["Vary"] = "Accept-Encoding"  # for caches: this answer depends on it
            accept = http_body.header(event.raw_event, "accept-encoding")
            self.response.compress = http_codings.accepts_gzip(accept)
        super()._route(event, cors)

    def _may_compress(self) -> bool:
        # Only a route's answer (Powertools compresses nothing else), and only if nobody decided already.
        return self.compresses and self.route is not None and self.response.compress is None

    @staticmethod
    def _has_compression_enabled(route_compression: bool, response_compression: bool | None, event: Any) -> bool:
        # `_route` decided from Accept-Encoding already, with its q-values and in any case: Powertools' own check
        # looks for "gzip" as written (so "GZIP" is refused and "gzip;q=0" taken).
        if response_compression is not None:
            return response_compression
        if not route_compression:
            return False
        return ResponseBuilder._has_compression_enabled(route_compression, response_compression, event)

    def _compress(self) -> None:
        # Powertools' own steps, at GZIP_LEVEL.
        body = self.response.body
        if body is None:
            return
        self.response.headers["Content-Encoding"] = "gzip"
        gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        self.response.body = gzip.compress(body.encode() if isinstance(body, str) else body) + gzip.flush()


class _RestResponseBuilder(_ResponseBuilder):
    """API Gateway REST APIs send a base64 answer as binary only for BinaryMediaTypes (application/octet-stream
    here): a gzip'd JSON answer would reach the client as base64 text. The REST API compresses answers itself
    (MinimumCompressionSize in template.yaml)."""

    compresses = False


class HttpApi:
    """The four HTTP resolvers, every protocol's route table on each, bound to one service (or its startup error)."""

    def __init__(self, started: Started, settings: Settings) -> None:
        self.started = started
        self.settings = settings
        self.table = Table(endpoints_v1.ROUTES, endpoints_v2.ROUTES)
        self.v2 = V2Protocol(started.service) if started.service is not None else None
        self._openapi: dict[str, str] = {}
        self.resolvers: dict[HttpTrigger, ApiGatewayResolver] = {}
        for trigger in _RESOLVERS:
            resolver = _resolver(trigger)
            for route in self.table.routes:
                resolver.route(route.rule, route.method, include_in_schema=False)(
                    self._endpoint(resolver, trigger, route)
                )
            register_errors(resolver, self)
            self.resolvers[trigger] = resolver

    @property
    def service(self) -> Service | None:
        return self.started.service

    def _endpoint(self, resolver: ApiGatewayResolver, trigger: HttpTrigger, route: Route) -> Callable[..., Any]:
        def endpoint(**parameters: str) -> Any:
            call = Call(self, trigger, resolver.current_event, resolver.lambda_context, resolver.context.get("binary"))
            return route.endpoint(call, **parameters)

        endpoint.__name__ = route.endpoint.__name__
        return endpoint

    def handle(self, trigger: HttpTrigger, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one HTTP event of the given trigger, as that trigger expects the response."""
        try:
            body = http_body.prepare(event, self.settings.max_body_bytes)
        except SkewlessError as exc:
            _, event_class = _RESOLVERS[trigger]
            request_id = str(getattr(context, "aws_request_id", "unknown"))
            builder: ResponseBuilder[Any] = ResponseBuilder(error_response(exc, request_id))
            response = builder.build(event_class(event))
        else:
            resolver = self.resolvers[trigger]
            if body.binary is not None:
                resolver.append_context(binary=body.binary)  # this request's, cleared by Powertools once answered
            response = resolver.resolve(body.event, context)
        if response.get("statusCode", 200) >= 500:  # every 5xx, however it was made: the canary's alarm counts them
            count_5xx()
        return response

    def openapi_json(self, trigger: str) -> str:
        """The OpenAPI document Powertools generates from the route tables (built once per trigger, when asked)."""
        if trigger not in self._openapi:
            from handler.triggers.http.openapi import document  # lazily: pydantic's models only for this request

            m = self.service.artifacts.manifest if self.service is not None else None
            self._openapi[trigger] = document(_resolver(trigger), self.table.routes, m)  # type: ignore[arg-type]
        return self._openapi[trigger]


def _resolver(trigger: HttpTrigger) -> ApiGatewayResolver:
    resolver_class, _ = _RESOLVERS[trigger]
    resolver = resolver_class(enable_validation=False, json_body_deserializer=http_body.parse_json_body)
    # As Powertools' own Bedrock resolvers set theirs.
    resolver._response_builder_class = _RestResponseBuilder if trigger == "rest" else _ResponseBuilder
    return resolver


def register_errors(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Every error, on one resolver, in our shape."""

    def answer(exc: SkewlessError) -> Response[Any]:
        return error_response(exc, str(getattr(app.lambda_context, "aws_request_id", "unknown")))

    @app.exception_handler(SkewlessError)
    def skewless_error(exc: SkewlessError) -> Response[Any]:
        return answer(exc)  # a 5xx's message is logged there, under the request id

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[Any]:
        method, path = app.current_event.http_method.upper(), app.current_event.path
        allow = api.table.allowed_methods(path)
        if allow and method not in allow:
            return answer(MethodNotAllowed(method, path, allow))
        return answer(NotFound(f"no route {method} {path}: see GET /openapi.json for the routes"))

    @app.exception_handler(ServiceError)
    def service_error(exc: ServiceError) -> Response[Any]:
        err = SkewlessError(str(exc.msg))
        err.status = exc.status_code
        return answer(err)

    @app.exception_handler(Exception)
    def internal_error(exc: Exception) -> Response[Any]:
        # The stack trace goes to the log, never to the client.
        request_id = str(getattr(app.lambda_context, "aws_request_id", "unknown"))
        logger.exception("unexpected error while answering a request", extra={"request_id": request_id})
        count_internal_error()
        return answer(SkewlessError(f"unexpected {type(exc).__name__}: its trace is logged with this request id"))

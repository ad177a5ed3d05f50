"""HTTP triggers (API Gateway REST and HTTP APIs, Function URL, ALB): Powertools resolvers, one set of routes.

The same routes (`routes_v1.py`: TF Serving REST; `routes_v2.py`: Open Inference Protocol v2)
are registered on the four resolvers, so every trigger answers alike. Bodies are checked first
(`http_body.py`: size, base64, the binary extension). Powertools' request validation is off: the
coercer checks every body with better messages, and validating twice cost more than the model.
"""

from __future__ import annotations

import json
import re
import zlib
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
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import (
    ALBEvent,
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    LambdaFunctionUrlEvent,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from handler.core.service import Service
from handler.core.values import kind_of
from handler.errors import BadRequest, NotFound, SkewlessError
from handler.monitoring.stats import STATS
from handler.observability import add_metric, count_internal_error, logger
from handler.protocols import codings as http_codings
from handler.protocols.oip import V2Protocol
from handler.settings import Settings
from handler.triggers.http import body as http_body
from handler.triggers.http.errors import MethodNotAllowed, error_response

HttpTrigger = Literal["rest", "http", "function_url", "alb"]

_RESOLVERS: dict[HttpTrigger, tuple[type[ApiGatewayResolver], type[BaseProxyEvent]]] = {
    "rest": (APIGatewayRestResolver, APIGatewayProxyEvent),
    "http": (APIGatewayHttpResolver, APIGatewayProxyEventV2),
    "function_url": (LambdaFunctionUrlResolver, LambdaFunctionUrlEvent),
    "alb": (ALBResolver, ALBEvent),
}

# Every route, once: (method, rule in Powertools' syntax). The 405 answer is computed from this table.
ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/v1/models/<name>:predict"),
    ("POST", "/v1/models/<name>/versions/<version>:predict"),
    ("POST", "/v1/models/<name>/labels/<label>:predict"),
    ("POST", "/v1/models/<name>:classify"),
    ("POST", "/v1/models/<name>/versions/<version>:classify"),
    ("POST", "/v1/models/<name>/labels/<label>:classify"),
    ("POST", "/v1/models/<name>:regress"),
    ("POST", "/v1/models/<name>/versions/<version>:regress"),
    ("POST", "/v1/models/<name>/labels/<label>:regress"),
    ("POST", "/predict"),
    ("GET", "/"),
    ("GET", "/v1/models/<name>"),
    ("GET", "/v1/models/<name>/versions/<version>"),
    ("GET", "/v1/models/<name>/labels/<label>"),
    ("GET", "/v1/models/<name>/metadata"),
    ("GET", "/v1/models/<name>/versions/<version>/metadata"),
    ("GET", "/v1/models/<name>/labels/<label>/metadata"),
    ("GET", "/v2"),
    ("POST", "/v2/models/<name>/infer"),
    ("POST", "/v2/models/<name>/versions/<version>/infer"),
    ("GET", "/v2/models/<name>"),
    ("GET", "/v2/models/<name>/versions/<version>"),
    ("GET", "/v2/models/<name>/ready"),
    ("GET", "/v2/models/<name>/versions/<version>/ready"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/<name>/config"),
    ("GET", "/v2/models/<name>/versions/<version>/config"),
    ("GET", "/v2/models/stats"),
    ("GET", "/v2/models/<name>/stats"),
    ("GET", "/v2/models/<name>/versions/<version>/stats"),
    ("POST", "/v2/repository/index"),
    ("GET", "/openapi.json"),
)


def _strict_regex(rule: str) -> re.Pattern[str]:
    # Powertools lets a path parameter contain ':' (so "/v1/models/<name>" also matches
    # "/v1/models/churn:predict"); model names never do, so for 405/404 decisions we exclude it.
    parts = re.split(r"<\w+>", rule)
    return re.compile("^" + "[^/:]+".join(re.escape(p) for p in parts) + "$")


_STRICT = [(method, _strict_regex(rule)) for method, rule in ROUTES]


def allowed_methods(path: str) -> list[str]:
    """Methods that some route accepts on this path (empty: no route has this path)."""
    return sorted({method for method, rx in _STRICT if rx.match(path)})


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


class Request:
    """What a route and an error answer need from the current request, read from it when asked (most never are)."""

    __slots__ = ("_event", "_context")

    def __init__(self, event: BaseProxyEvent, context: Any) -> None:
        self._event, self._context = event, context

    @property
    def request_id(self) -> str:
        return str(getattr(self._context, "aws_request_id", "unknown"))

    @property
    def method(self) -> str:
        return self._event.http_method.upper()

    @property
    def path(self) -> str:
        return self._event.path


class HttpApi:
    """The four HTTP resolvers, one set of routes, bound to one service."""

    def __init__(self, service: Service | None, settings: Settings, startup_error: SkewlessError | None = None) -> None:
        from handler.triggers.http import endpoints_v1 as routes_v1  # they import this module's helpers
        from handler.triggers.http import endpoints_v2 as routes_v2

        self.service = service
        self.settings = settings
        self.startup_error = startup_error
        self.v2 = V2Protocol(service) if service is not None else None
        self.binary: tuple[dict[str, Any], bytes] | None = None  # this invocation's binary OIP body, if any
        self._openapi: dict[str, str] = {}
        self.resolvers: dict[HttpTrigger, ApiGatewayResolver] = {}
        for trigger, (resolver_class, _) in _RESOLVERS.items():
            resolver = resolver_class(enable_validation=False, json_body_deserializer=http_body.parse_json_body)
            # As Powertools' own Bedrock resolvers set theirs.
            resolver._response_builder_class = _RestResponseBuilder if trigger == "rest" else _ResponseBuilder
            routes_v1.register(resolver, self)
            routes_v2.register(resolver, self)
            register_errors(resolver, self)
            self.resolvers[trigger] = resolver

    def handle(self, trigger: HttpTrigger, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one HTTP event of the given trigger, as that trigger expects the response."""
        try:
            body = http_body.prepare(event, self.settings.max_body_bytes)
        except SkewlessError as exc:
            _, event_class = _RESOLVERS[trigger]
            request_id = str(getattr(context, "aws_request_id", "unknown"))
            builder: ResponseBuilder[Any] = ResponseBuilder(error_response(exc, request_id))
            return builder.build(event_class(event))
        self.binary = body.binary
        try:
            return self.resolvers[trigger].resolve(body.event, context)
        finally:
            self.binary = None

    # --- what routes share ---------------------------------------------------------------

    def require_service(self) -> Service:
        """The service, or the reason it could not start (artifacts invalid: 503)."""
        if self.service is None:
            raise self.startup_error or SkewlessError("the service is not available")
        return self.service

    def require_model(self, req: Request, name: str, version: str | None = None, label: str | None = None) -> Service:
        """The service if `name` (and `version` or `label`) is what is served here; else 404 (405 on a route)."""
        service = self.require_service()
        # A parameter holding ':' is Powertools reading "versions/1:predict" as version "1:predict" on a GET route:
        # that path is another route's, so its method is what is wrong (checked only then: it reads every route).
        if name != service.name or ":" in f"{version or ''}{label or ''}":
            allow = allowed_methods(req.path)
            if allow and req.method not in allow:
                raise MethodNotAllowed(req.method, req.path, allow)
        if name != service.name:
            raise NotFound(f"model '{name}' is not served here: this function serves '{service.name}'")
        served = service.artifacts.manifest.version
        if version is not None and version != served:
            raise NotFound(
                f"version {version} of model '{name}' is not served here: this function serves version {served}"
            )
        if label is not None and label not in self.settings.model_labels:
            labels = ", ".join(self.settings.model_labels) or "none"
            raise NotFound(f"label '{label}' of model '{name}' is not served here (labels: {labels}; MODEL_LABELS)")
        return service

    def json_body(self, app: ApiGatewayResolver) -> Any:
        """The request's parsed JSON body; malformed or missing JSON is a 400 that says so."""
        event = app.current_event
        text = event.body
        if not text or text.isspace():  # what strip() leaves empty, without copying a large body
            raise BadRequest("the request has no body: send a JSON object")
        try:
            body = event.json_body
        except json.JSONDecodeError as exc:
            raise http_body.not_json(exc, event.headers.get("content-type")) from None
        if self.settings.log_request_values:
            logger.info("request body", extra={"body": body})
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, got {kind_of(body)}")
        return body

    def openapi_json(self, resolver: ApiGatewayResolver) -> str:
        """The OpenAPI document Powertools generates from the routes (built once per resolver)."""
        key = type(resolver).__name__
        if key not in self._openapi:
            m = self.service.artifacts.manifest if self.service is not None else None
            self._openapi[key] = resolver.get_openapi_json_schema(
                title="skewless",
                version=m.version if m is not None else "unknown",
                description=(
                    f"Serves the Keras model '{m.name if m else '?'}' with the answers it gave at training time: "
                    "TF Serving REST and the Open Inference Protocol v2."
                ),
            )
        return self._openapi[key]


def current(app: ApiGatewayResolver) -> Request:
    return Request(app.current_event, app.lambda_context)


def timed_predict(service: Service, columns: dict[str, Any]) -> Any:
    """Predict and record inference time and batch size; a batch with any row unanswerable is refused.

    Every HTTP inference comes through here: it is counted, success or failure, in Triton's statistics.
    """
    with STATS.request(service):
        prediction = service.run(columns)
        prediction.raise_for_problems()
    add_metric("InferenceTime", MetricUnit.Milliseconds, service.last.inference_seconds * 1e3)
    add_metric("BatchSize", MetricUnit.Count, service.last.batch_size)
    return prediction.outputs


def model_load_failure(service: Service) -> str | None:
    """Why the last model load failed (until one succeeds), in words safe to answer with; else None."""
    exc = service.model.last_error
    if exc is None or service.model.loaded:
        return None
    if isinstance(exc, SkewlessError):
        return exc.message
    return f"the last model load failed ({type(exc).__name__}); the next prediction tries again"


def register_errors(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Every error, on one resolver, in our shape."""

    def answer(exc: SkewlessError) -> Response[Any]:
        return error_response(exc, current(app).request_id)

    @app.exception_handler(SkewlessError)
    def skewless_error(exc: SkewlessError) -> Response[Any]:
        if exc.status >= 500:
            logger.error("request failed", extra={"code": exc.code, "reason": exc.message})
        return answer(exc)

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[Any]:
        req = current(app)
        allow = allowed_methods(req.path)
        if allow and req.method not in allow:
            return answer(MethodNotAllowed(req.method, req.path, allow))
        return answer(NotFound(f"no route {req.method} {req.path}: see GET /openapi.json for the routes"))

    @app.exception_handler(ServiceError)
    def service_error(exc: ServiceError) -> Response[Any]:
        err = SkewlessError(str(exc.msg))
        err.status = exc.status_code
        return answer(err)

    @app.exception_handler(Exception)
    def internal_error(exc: Exception) -> Response[Any]:
        # The stack trace goes to the log, never to the client.
        logger.exception("unexpected error while answering a request")
        count_internal_error()
        return answer(SkewlessError("internal error: this is a fault of the service, not of the request"))

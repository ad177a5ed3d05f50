"""HTTP triggers (API Gateway REST and HTTP APIs, Function URL, ALB): Powertools resolvers, routes, errors.

The same routes are registered on the four resolvers by one function, so every trigger answers
alike. Bodies are checked (size, base64, content type) before a resolver sees them, because
Powertools' request validation parses the body before any middleware of ours would run.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import (
    ALBResolver,
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import (
    ALBEvent,
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    LambdaFunctionUrlEvent,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, ConfigDict, Field

from handler.core.answer import format_v1
from handler.core.service import Service
from handler.errors import (
    BadRequest,
    FieldError,
    InvalidInput,
    ModelLoadError,
    NotFound,
    PayloadTooLarge,
    SkewlessError,
)
from handler.observability import count_rejection, logger, metrics
from handler.settings import Settings
from handler.sources import tfserving
from handler.sources.oip import V2Protocol

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
    ("POST", "/predict"),
    ("GET", "/v1/models/<name>"),
    ("GET", "/v1/models/<name>/metadata"),
    ("POST", "/v2/models/<name>/infer"),
    ("GET", "/v2/models/<name>"),
    ("GET", "/v2/models/<name>/ready"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
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


class MethodNotAllowed(SkewlessError):
    """The path exists but not with this method; `allow` lists the methods it takes."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, path: str, allow: list[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}: use {' or '.join(allow)}")
        self.allow = allow


# --- request bodies, as the OpenAPI document describes them --------------------------------


class PredictRequest(BaseModel):
    """A TF-Serving v1 predict body: rows in `instances`, or columns (or one example) in `inputs`."""

    model_config = ConfigDict(extra="allow")

    signature_name: str | None = Field(None, description="accepted and ignored: the model has one signature")
    instances: list[Any] | None = Field(
        None, description="rows: each an object of named features (any key order) or an array in training order"
    )
    inputs: dict[str, Any] | list[Any] | None = Field(
        None, description="columns: feature -> array (a batch) or feature -> value (one example), or ordered rows"
    )


class PredictResponse(BaseModel):
    """TF-Serving v1 answer: `predictions` for `instances` requests, `outputs` for `inputs` requests."""

    predictions: list[Any] | None = None
    outputs: list[Any] | None = None


class ErrorBody(BaseModel):
    """Every error answer: what is wrong and the fix, a stable code, and for a 422 every offending field."""

    error: str
    code: str
    details: list[dict[str, Any]] | None = Field(None, description="422 only: {instance, feature, reason} each")
    request_id: str | None = Field(None, description="5xx only: find the request in the logs")


def _responses(ok: str, model: type[BaseModel] | None = None, *statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses of a route: its 200 and our error shape for each error status it can answer."""
    described = {
        400: "not JSON, not a JSON object, or not Content-Type: application/json",
        404: "no model of that name is served here",
        405: "the path takes another method (see the Allow header)",
        413: "the body is over MAX_BODY_BYTES",
        422: "the body does not fit the model's input spec: every offending instance and feature",
        500: "a fault of the service (no stack trace; the request id finds it in the logs)",
        503: "the artifacts failed verification or the model cannot load",
    }
    out: dict[int, OpenAPIResponse] = {200: {"description": ok}}
    if model is not None:
        out[200]["content"] = {"application/json": {"model": model}}
    for status in statuses or tuple(described):
        out[status] = {"description": described[status], "content": {"application/json": {"model": ErrorBody}}}
    return out


class InferTensor(BaseModel):
    """One OIP v2 input tensor."""

    name: str
    shape: list[int]
    datatype: str = Field(description="FP32, FP64, INT32, INT64, BOOL or BYTES")
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An Open Inference Protocol v2 infer body."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor]
    outputs: list[dict[str, Any]] | None = None


# --- body checks made before any resolver ---------------------------------------------------

_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name and values:
            return str(values[0])
    return None


def prepare_body(event: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Check the body's size and type, and return the event with a plain-text body (base64 decoded)."""
    body = event.get("body")
    if not body:
        return event
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
    content_type = _header(event, "content-type")
    if content_type and not _JSON_TYPE.match(content_type.strip()):
        raise BadRequest(
            f"Content-Type {content_type!r} is not JSON: send the body as JSON with Content-Type: application/json"
        )
    if not encoded:
        return event
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text: send JSON") from None
    return {**event, "body": text, "isBase64Encoded": False}


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


# --- errors ---------------------------------------------------------------------------------


def _from_validation_error(exc: RequestValidationError, has_body: bool = False) -> SkewlessError:
    """Powertools/pydantic request validation errors -> our 400 (not JSON) or 422 (does not fit)."""
    errors = list(exc.errors())
    field_errors: list[FieldError] = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        kind = e.get("type", "")
        if kind == "json_invalid":
            pos = loc[1] if len(loc) > 1 else "?"
            reason = (e.get("ctx") or {}).get("error", "malformed")
            return BadRequest(f"the body is not valid JSON: {reason} at position {pos}")
        if loc == ("body",):
            if kind == "missing":
                # Powertools reports the JSON text `null` as a missing body; say what was sent.
                if has_body:
                    return BadRequest("the body must be a JSON object, got null")
                return BadRequest("the request has no body: send a JSON object")
            return BadRequest(f"the body must be a JSON object ({e.get('msg', kind)})")
        where = ".".join(str(p) for p in loc[1:]) if loc and loc[0] == "body" else ".".join(str(p) for p in loc)
        field_errors.append(FieldError(None, where or None, str(e.get("msg", kind))))
    return InvalidInput(field_errors)


@dataclass
class _Request:
    """What an error answer needs from the current request."""

    request_id: str
    method: str
    path: str


def error_response(exc: SkewlessError, request_id: str) -> Response:
    """Our error shape for every status; a 5xx carries the request id and never a stack trace."""
    body = exc.to_body()
    headers: dict[str, str] = {}
    if exc.status >= 500:
        body["request_id"] = request_id
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allow)
    _record_rejection(exc)
    return Response(status_code=exc.status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def _record_rejection(exc: SkewlessError) -> None:
    # The code and status, never the message: a 422's reasons can quote the request's values.
    logger.info("request rejected", extra={"status": exc.status, "code": exc.code})
    count_rejection(exc)


# --- the API ---------------------------------------------------------------------------------


class HttpApi:
    """The four HTTP resolvers, one set of routes, bound to one service."""

    def __init__(self, service: Service | None, settings: Settings, startup_error: SkewlessError | None = None) -> None:
        self.service = service
        self.settings = settings
        self.startup_error = startup_error
        self.v2 = V2Protocol(service) if service is not None else None
        self._openapi: dict[str, str] = {}
        self.resolvers: dict[HttpTrigger, ApiGatewayResolver] = {}
        for trigger, (resolver_class, _) in _RESOLVERS.items():
            resolver = resolver_class(enable_validation=True, json_body_deserializer=parse_json_body)
            register_routes(resolver, self)
            self.resolvers[trigger] = resolver

    def handle(self, trigger: HttpTrigger, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one HTTP event of the given trigger, as that trigger expects the response."""
        try:
            event = prepare_body(event, self.settings.max_body_bytes)
        except SkewlessError as exc:
            _, event_class = _RESOLVERS[trigger]
            request_id = str(getattr(context, "aws_request_id", "unknown"))
            builder: ResponseBuilder[Any] = ResponseBuilder(error_response(exc, request_id))
            return builder.build(event_class(event))
        return self.resolvers[trigger].resolve(event, context)

    def require_service(self) -> Service:
        """The service, or the reason it could not start (artifacts invalid: 503)."""
        if self.service is None:
            raise self.startup_error or SkewlessError("the service is not available")
        return self.service

    def require_model(self, name: str, method: str, path: str) -> Service:
        """The service if `name` is the model served here; else 404 (or 405 when the path is a route)."""
        service = self.require_service()
        if name != service.name:
            allow = allowed_methods(path)
            if allow and method not in allow:
                raise MethodNotAllowed(method, path, allow)
            raise NotFound(f"model '{name}' is not served here: this function serves '{service.name}'")
        return service

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
                    "TF-Serving v1 and Open Inference Protocol v2."
                ),
            )
        return self._openapi[key]


def _timed_predict(service: Service, columns: dict[str, Any]) -> Any:
    """Predict and record inference time and batch size; a batch with any row unanswerable is refused."""
    prediction = service.run(columns)
    prediction.raise_for_problems()
    outputs = prediction.outputs
    metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=service.last.inference_seconds * 1e3)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=service.last.batch_size)
    return outputs


def model_load_failure(service: Service) -> str | None:
    """Why the last model load failed (until one succeeds), in words safe to answer with; else None."""
    exc = service.model.last_error
    if exc is None or service.model.loaded:
        return None
    if isinstance(exc, SkewlessError):
        return exc.message
    return f"the last model load failed ({type(exc).__name__}); the next prediction tries again"


def register_routes(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Register every route and error handler on one resolver."""

    def current() -> _Request:
        event = app.current_event
        return _Request(
            request_id=str(getattr(app.lambda_context, "aws_request_id", "unknown")),
            method=event.http_method.upper(),
            path=event.path,
        )

    def model(name: str) -> Service:
        req = current()
        return api.require_model(name, req.method, req.path)

    def log_body(body: Any) -> None:
        if api.settings.log_request_values:
            logger.info("request body", extra={"body": body})

    def predict_v1(service: Service) -> dict[str, Any]:
        body = app.current_event.json_body
        log_body(body)
        req = service.coercer.coerce(body)
        return format_v1(_timed_predict(service, req.columns), req, service.output_names)

    @app.post(
        "/v1/models/<name>:predict",
        summary="TF-Serving v1 predict",
        responses=_responses("the predictions", PredictResponse),
        tags=["TF-Serving v1"],
    )
    def predict_named(name: str, body: Annotated[PredictRequest, Body()]) -> dict[str, Any]:
        return predict_v1(model(name))

    @app.post(
        "/predict",
        summary="TF-Serving v1 predict on the served model",
        responses=_responses("the predictions", PredictResponse),
        tags=["TF-Serving v1"],
    )
    def predict(body: Annotated[PredictRequest, Body()]) -> dict[str, Any]:
        return predict_v1(api.require_service())

    @app.get(
        "/v1/models/<name>",
        summary="TF-Serving model status",
        tags=["TF-Serving v1"],
        responses=_responses("the model version status", None, 404, 405, 503),
    )
    def model_status(name: str) -> dict[str, Any]:
        service = model(name)
        return {
            "model_version_status": [
                {
                    "version": service.artifacts.manifest.version,
                    # Artifacts are verified; the model itself loads on first use.
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    @app.get(
        "/v1/models/<name>/metadata",
        summary="TF-Serving model metadata (from the manifest, without loading the model)",
        tags=["TF-Serving v1"],
        responses=_responses("signature, version, raw features", None, 404, 405, 503),
    )
    def model_metadata(name: str) -> dict[str, Any]:
        service = model(name)
        m = service.artifacts.manifest
        return tfserving.metadata(m.name, m.version, m.signature)

    @app.post(
        "/v2/models/<name>/infer",
        summary="Open Inference Protocol v2 infer",
        tags=["Open Inference v2"],
        responses=_responses("the output tensors"),
    )
    def infer(name: str, body: Annotated[InferRequest, Body()]) -> dict[str, Any]:
        service = model(name)
        assert api.v2 is not None  # set whenever the service is
        parsed = body.model_dump(exclude_none=True)
        log_body(parsed)
        req = api.v2.coerce(parsed)
        return api.v2.response(_timed_predict(service, req.columns), body.id)

    @app.get(
        "/v2/models/<name>",
        summary="Open Inference Protocol v2 model metadata",
        tags=["Open Inference v2"],
        responses=_responses("input and output tensors", None, 404, 405, 503),
    )
    def v2_metadata(name: str) -> dict[str, Any]:
        model(name)
        assert api.v2 is not None
        return api.v2.metadata()

    @app.get(
        "/v2/models/<name>/ready",
        summary="Open Inference Protocol v2 model ready",
        tags=["Open Inference v2"],
        responses=_responses("ready", None, 404, 405, 503),
    )
    def v2_model_ready(name: str) -> dict[str, Any]:
        service = model(name)
        failed = model_load_failure(service)
        if failed is not None:
            raise ModelLoadError(failed)
        return {"name": service.name, "ready": True}

    @app.get("/v2/health/live", summary="the process answers", tags=["Open Inference v2"])
    def live() -> dict[str, Any]:
        return {"live": True}

    @app.get(
        "/v2/health/ready", summary="artifacts verified (the model may still load lazily)", tags=["Open Inference v2"]
    )
    def ready() -> Response[dict[str, Any]]:
        if api.service is None:
            reason = api.startup_error.message if api.startup_error else "not started"
            return Response(503, content_types.APPLICATION_JSON, {"ready": False, "reason": reason})
        service = api.service
        failed = model_load_failure(service)
        if failed is not None:  # the artifacts verified, but the model would not load: predictions answer 503
            body = {"ready": False, "model": service.name, "model_loaded": False, "reason": failed}
            return Response(503, content_types.APPLICATION_JSON, body)
        body = {"ready": True, "model": service.name, "model_loaded": service.model.loaded}
        if service.warnings:
            body["warnings"] = service.warnings
        return Response(200, content_types.APPLICATION_JSON, body)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(200, content_types.APPLICATION_JSON, api.openapi_json(app))

    # --- errors: every one in our shape --------------------------------------------------

    def answer(exc: SkewlessError) -> Response:
        return error_response(exc, current().request_id)

    @app.exception_handler(SkewlessError)
    def skewless_error(exc: SkewlessError) -> Response:
        if exc.status >= 500:
            logger.error("request failed", extra={"code": exc.code, "reason": exc.message})
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    def validation_error(exc: RequestValidationError) -> Response:
        return answer(_from_validation_error(exc, has_body=bool((app.current_event.body or "").strip())))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_type(exc: RequestUnsupportedContentType) -> Response:
        return answer(BadRequest("the body must be JSON with Content-Type: application/json"))

    @app.not_found
    def not_found(exc: NotFoundError) -> Response:
        req = current()
        allow = allowed_methods(req.path)
        if allow and req.method not in allow:
            return answer(MethodNotAllowed(req.method, req.path, allow))
        return answer(NotFound(f"no route {req.method} {req.path}: see GET /openapi.json for the routes"))

    @app.exception_handler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        err = SkewlessError(str(exc.msg))
        err.status = exc.status_code
        return answer(err)

    @app.exception_handler(Exception)
    def internal_error(exc: Exception) -> Response:
        # The stack trace goes to the log, never to the client.
        logger.exception("unexpected error while answering a request")
        return answer(SkewlessError("internal error: this is a fault of the service, not of the request"))

"""The request and response bodies as the OpenAPI document describes them (GET /openapi.json).

They document; they do not validate. The coercer checks every body, with messages that name the
instance, the input and the reason; validating twice cost more than the model itself on the
warm path.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from handler.core.artifacts import Manifest
from handler.triggers.http.routes import Route


class PredictRequest(BaseModel):
    """A TF-Serving v1 predict body: rows in `instances`, or columns (or one example) in `inputs`."""

    model_config = ConfigDict(extra="allow")

    signature_name: str | None = Field(None, description="serving_default (the one signature), or left out")
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


class ExamplesRequest(BaseModel):
    """A TF-Serving classify or regress body: examples keyed by input, and inputs shared by all of them."""

    signature_name: str | None = Field(None, description="serving_default (the one signature), or left out")
    context: dict[str, Any] | None = Field(None, description="inputs added to every example")
    examples: list[dict[str, Any]] = Field(description="one object per example, keyed by input name")


class RegressResponse(BaseModel):
    """TF-Serving's regress answer: one score per example."""

    result: list[float]


class RepositoryIndexRequest(BaseModel):
    """Triton's repository index body (an empty body is taken too)."""

    ready: bool | None = Field(None, description="true: only the models ready for inference")


class ErrorBody(BaseModel):
    """Every error answer: what is wrong and the fix, a stable code, and for a 422 every offending field."""

    error: str
    code: str
    details: list[dict[str, Any]] | None = Field(None, description="422 only: {instance, feature, reason} each")
    request_id: str | None = Field(None, description="5xx only: find the request in the logs")


def responses(ok: str, model: type[BaseModel] | None = None, *statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses of a route: its 200 and our error shape for each error status it can answer."""
    described = {
        400: "not JSON, not a JSON object, an unknown signature or output, or bad binary framing",
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
    datatype: str = Field(description="BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES")
    data: list[Any] | None = Field(None, description="row-major, flat or nested; absent with binary_data_size")
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An Open Inference Protocol v2 infer body."""

    id: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$",
        description="names the rows: row i's inference id is <id>/<i> (default: the X-Inference-Id header, else "
        "the request id); answered as the response's id",
    )
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor]
    outputs: list[dict[str, Any]] | None = Field(None, description="the outputs to answer with (default: all)")


def document(resolver: ApiGatewayResolver, routes: Sequence[Route], manifest: Manifest | None) -> str:
    """The OpenAPI document of the route tables, generated by Powertools on a resolver of the trigger's kind.

    Built when first asked for, on a resolver of its own: each route registered with its summary, its responses
    and a signature naming its path parameters and its documented body (Powertools reads them from there).
    """
    for route in routes:
        if not route.in_schema:
            continue
        doc = route.doc
        kwargs: dict[str, Any] = {"summary": route.summary, "tags": list(route.tags)}
        if doc is not None:
            answer = globals()[doc.answer] if doc.answer else None
            kwargs["responses"] = responses(doc.ok, answer, *doc.errors)
        resolver.route(route.rule, route.method, **kwargs)(_documented(route))
    return resolver.get_openapi_json_schema(
        title="skewless",
        version=manifest.version if manifest is not None else "unknown",
        description=(
            f"Serves the Keras model '{manifest.name if manifest else '?'}' with the answers it gave at training "
            "time: TF Serving REST and the Open Inference Protocol v2."
        ),
    )


def _documented(route: Route) -> Any:
    """A stand-in for the route's endpoint whose signature documents it: str path parameters, the body's model."""

    def endpoint(**parameters: str) -> Any:
        raise NotImplementedError("documents a route; the served resolvers call the endpoint itself")

    params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=str) for p in route.parameters]
    if route.doc is not None and route.doc.body is not None:
        body = Annotated[globals()[route.doc.body], Body()]  # type: ignore[valid-type]
        params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body, default=None))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = route.endpoint.__name__
    return endpoint

"""The Open Inference Protocol v2 (KServe, Triton): server and model metadata, health, infer.

Infer takes JSON, or the binary tensor data extension (a JSON header then raw tensor bytes, what
Triton's clients send by default); outputs asked for as binary come back that way. Triton's model
configuration, statistics and repository index extensions (`triton.py`, `inference_stats.py`) are
answered too.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata as package_metadata
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Body

from handler.core.service import Service
from handler.errors import ModelLoadError
from handler.monitoring.stats import STATS
from handler.protocols import oip_binary, triton
from handler.protocols.oip import V2Protocol, without_arrays
from handler.triggers.http.openapi import InferRequest, RepositoryIndexRequest, responses
from handler.triggers.http.resolvers import HttpApi, current, model_load_failure, timed_predict

TAGS = ["Open Inference Protocol v2"]
TRITON = ["Triton extensions"]
# As Triton names them in its server metadata. Not model_repository: of it only the index is answered, not load.
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


def _version() -> str:
    try:
        return package_metadata.version("skewless")
    except package_metadata.PackageNotFoundError:  # run from a source tree that is not installed (the image)
        return "unknown"


def register(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Register the OIP v2 routes on one resolver."""

    def served(name: str, version: str | None = None) -> tuple[Service, V2Protocol]:
        service = api.require_model(current(app), name, version)
        assert api.v2 is not None  # set whenever the service is
        return service, api.v2

    def infer(name: str, version: str | None) -> Response[Any] | dict[str, Any]:
        service, v2 = served(name, version)
        if api.binary is not None:
            body, payload = api.binary
            oip_binary.attach_data(body, payload)
        else:
            body = api.json_body(app)
        req = v2.coerce(body)
        answer, binary = v2.response(timed_predict(service, req.columns), body)
        if not binary:
            return without_arrays(answer)
        raw, header_length = oip_binary.encode(
            {k: v for k, v in answer.items() if k != "outputs"}, answer["outputs"], binary
        )
        headers = {"Inference-Header-Content-Length": str(header_length)}
        return Response(200, oip_binary.BINARY_CONTENT_TYPE, raw, headers=headers)

    def ready(name: str, version: str | None) -> dict[str, Any]:
        service, _ = served(name, version)
        failed = model_load_failure(service)
        if failed is not None:
            raise ModelLoadError(failed)
        return {"name": service.name, "ready": True}

    @app.get("/v2", summary="server metadata", tags=TAGS)
    def server_metadata() -> dict[str, Any]:
        return {"name": "skewless", "version": _version(), "extensions": EXTENSIONS}

    infer_doc = responses("the output tensors")

    @app.post("/v2/models/<name>/infer", summary="infer", tags=TAGS, responses=infer_doc)
    def infer_latest(name: str, body: Annotated[InferRequest, Body()] = None) -> Any:  # type: ignore[assignment]
        return infer(name, None)

    @app.post(
        "/v2/models/<name>/versions/<version>/infer", summary="infer with a version", tags=TAGS, responses=infer_doc
    )
    def infer_version(name: str, version: str, body: Annotated[InferRequest, Body()] = None) -> Any:  # type: ignore[assignment]
        return infer(name, version)

    meta_doc = responses("input and output tensors", None, 404, 405, 503)

    @app.get("/v2/models/<name>", summary="model metadata", tags=TAGS, responses=meta_doc)
    def model_metadata(name: str) -> dict[str, Any]:
        return served(name)[1].metadata()

    @app.get("/v2/models/<name>/versions/<version>", summary="a version's metadata", tags=TAGS, responses=meta_doc)
    def version_metadata(name: str, version: str) -> dict[str, Any]:
        return served(name, version)[1].metadata()

    ready_doc = responses("ready", None, 404, 405, 503)

    @app.get("/v2/models/<name>/ready", summary="model ready", tags=TAGS, responses=ready_doc)
    def model_ready(name: str) -> dict[str, Any]:
        return ready(name, None)

    @app.get("/v2/models/<name>/versions/<version>/ready", summary="a version ready", tags=TAGS, responses=ready_doc)
    def version_ready(name: str, version: str) -> dict[str, Any]:
        return ready(name, version)

    @app.get("/v2/health/live", summary="the process answers", tags=TAGS)
    def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="artifacts verified (the model may still load lazily)", tags=TAGS)
    def health_ready() -> Response[dict[str, Any]]:
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

    _register_triton(app, api, lambda name, version=None: served(name, version)[0])


def _register_triton(app: ApiGatewayResolver, api: HttpApi, served: Callable[..., Service]) -> None:
    """Triton's model configuration, statistics and repository index extensions (what tritonclient calls)."""
    config_doc = responses("Triton's ModelConfig of the served model", None, 404, 405, 503)
    stats_doc = responses("Triton's statistics of the served model, since this container started", None, 404, 405, 503)

    def config(name: str, version: str | None) -> dict[str, Any]:
        return triton.model_config(served(name, version), api.settings.max_batch_size)

    def stats(service: Service) -> dict[str, Any]:
        return {"model_stats": [STATS.model_stat(service)]}

    @app.get("/v2/models/<name>/config", summary="model configuration (Triton)", tags=TRITON, responses=config_doc)
    def model_config(name: str) -> dict[str, Any]:
        return config(name, None)

    @app.get(
        "/v2/models/<name>/versions/<version>/config",
        summary="a version's configuration (Triton)",
        tags=TRITON,
        responses=config_doc,
    )
    def version_config(name: str, version: str) -> dict[str, Any]:
        return config(name, version)

    @app.get("/v2/models/stats", summary="statistics of every model (Triton)", tags=TRITON, responses=stats_doc)
    def all_stats() -> dict[str, Any]:
        return stats(api.require_service())

    @app.get("/v2/models/<name>/stats", summary="a model's statistics (Triton)", tags=TRITON, responses=stats_doc)
    def model_stats(name: str) -> dict[str, Any]:
        return stats(served(name))

    @app.get(
        "/v2/models/<name>/versions/<version>/stats",
        summary="a version's statistics (Triton)",
        tags=TRITON,
        responses=stats_doc,
    )
    def version_stats(name: str, version: str) -> dict[str, Any]:
        return stats(served(name, version))

    @app.post(
        "/v2/repository/index",
        summary="the models served here, and their state (Triton)",
        tags=TRITON,
        responses=responses("[{name, version, state, reason?}]", None, 400, 405, 413, 503),
    )
    def repository_index(body: Annotated[RepositoryIndexRequest, Body()] = None) -> list[dict[str, Any]]:  # type: ignore[assignment]
        service = api.require_service()
        text = app.current_event.body
        parsed = api.json_body(app) if text and not text.isspace() else None  # tritonclient sends no body
        return triton.repository_index(service, triton.index_filter(parsed))

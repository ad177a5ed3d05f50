"""The Open Inference Protocol v2 (KServe, Triton): server and model metadata, health, infer.

Infer takes JSON, or the binary tensor data extension (a JSON header then raw tensor bytes, what
Triton's clients send by default); outputs asked for as binary come back that way. Triton's model
configuration, statistics and repository index extensions (`protocols/triton.py`, `monitoring/stats.py`)
are answered too.
"""

from __future__ import annotations

from typing import Any

from handler.core import inference_ids
from handler.core.service import Service
from handler.errors import ModelLoadError, SkewlessError
from handler.monitoring.stats import STATS
from handler.observability import log_fault
from handler.protocols import oip_binary, triton
from handler.protocols.oip import V2Protocol, without_arrays
from handler.triggers.http.proxy import APPLICATION_JSON, Response
from handler.triggers.http.routes import Call, Doc, Route, identified, not_ready, predicted

TAGS = ("Open Inference Protocol v2",)
TRITON = ("Triton extensions",)
# As Triton names them in its server metadata. Not model_repository: of it only the index is answered, not load.
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


def _version() -> str:
    from importlib import metadata as package_metadata  # lazily: importing it takes ~15 ms, for this route alone

    try:
        return package_metadata.version("skewless")
    except package_metadata.PackageNotFoundError:  # run from a source tree that is not installed (the image)
        return "unknown"


def _v2(call: Call, name: str, version: str | None) -> tuple[Service, V2Protocol]:
    service = call.served(name, version)
    v2 = call.api.v2
    assert v2 is not None  # set whenever the service is
    return service, v2


def infer(call: Call, name: str, version: str | None = None) -> Any:
    service, v2 = _v2(call, name, version)
    if call.binary is not None:
        body, payload = call.binary
        oip_binary.attach_data(body, payload)
    else:
        body = call.json_body()
    req = v2.coerce(body)
    # OIP's own request id names the rows, else the X-Inference-Id header, else the request id.
    inference_id = inference_ids.client_id(body.get("id"), "the request's 'id'") or call.inference_id
    answer, binary = v2.response(predicted(service, req.columns, inference_id), body, inference_id)
    if not binary:
        return identified(without_arrays(answer), inference_id)
    raw, header_length = oip_binary.encode(
        {k: v for k, v in answer.items() if k != "outputs"}, answer["outputs"], binary
    )
    headers = {"Inference-Header-Content-Length": str(header_length), inference_ids.HEADER: inference_id}
    return Response(200, oip_binary.BINARY_CONTENT_TYPE, raw, headers=headers)


def server_metadata(call: Call) -> Any:
    return {"name": "skewless", "version": _version(), "extensions": EXTENSIONS}


def model_metadata(call: Call, name: str, version: str | None = None) -> Any:
    return _v2(call, name, version)[1].metadata()


def model_ready(call: Call, name: str, version: str | None = None) -> Any:
    service = call.served(name, version)
    failed = service.load_failure()
    if failed is not None:
        raise ModelLoadError(failed)  # answered with its safe text; the reason is logged
    return {"name": service.name, "ready": True}


def live(call: Call) -> Any:
    return {"live": True}


def health_ready(call: Call) -> Any:
    """Ready, or a 503 saying why in words safe for anyone who can reach it (the reason is logged, by request id)."""
    started = call.api.started
    if started.service is None:
        error = started.error or SkewlessError("the service did not start")
        log_fault(error, call.request_id)
        body: dict[str, Any] = {"ready": False, "reason": error.public_message, "request_id": call.request_id}
        return Response(503, APPLICATION_JSON, body)
    service = started.service
    failed = not_ready(call, service)
    if failed is not None:  # the artifacts verified, but the model would not load: predictions answer 503
        body = {"ready": False, "model": service.name, "model_loaded": False, "reason": failed}
        body["request_id"] = call.request_id
        return Response(503, APPLICATION_JSON, body)
    body = {"ready": True, "model": service.name, "model_loaded": service.model.loaded}
    if service.warnings:
        body["warnings"] = service.warnings
    return Response(200, APPLICATION_JSON, body)


def config(call: Call, name: str, version: str | None = None) -> Any:
    return triton.model_config(call.served(name, version), call.api.settings.max_batch_size)


def stats(call: Call, name: str | None = None, version: str | None = None) -> Any:
    service = call.service() if name is None else call.served(name, version)
    return {"model_stats": [STATS.model_stat(service)]}


def repository_index(call: Call) -> Any:
    service = call.service()
    parsed = call.json_body() if call.has_body() else None  # tritonclient sends no body
    return triton.repository_index(service, triton.index_filter(parsed), not_ready(call, service))


def openapi(call: Call) -> Any:
    return Response(200, APPLICATION_JSON, call.api.openapi_json(call.trigger))


_INFER = Doc("the output tensors", "InferRequest")
_META = Doc("input and output tensors", errors=(404, 405, 503))
_READY = Doc("ready", errors=(404, 405, 503))
_CONFIG = Doc("Triton's ModelConfig of the served model", errors=(404, 405, 503))
_STATS = Doc("Triton's statistics of the served model, since this container started", errors=(404, 405, 503))
_INDEX = Doc("[{name, version, state, reason?}]", "RepositoryIndexRequest", errors=(400, 405, 413, 503))
_NAME, _VERSION = "/v2/models/<name>", "/v2/models/<name>/versions/<version>"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2", server_metadata, "server metadata", TAGS),
    Route("POST", f"{_NAME}/infer", infer, "infer", TAGS, _INFER),
    Route("POST", f"{_VERSION}/infer", infer, "infer with a version", TAGS, _INFER),
    Route("GET", _NAME, model_metadata, "model metadata", TAGS, _META),
    Route("GET", _VERSION, model_metadata, "a version's metadata", TAGS, _META),
    Route("GET", f"{_NAME}/ready", model_ready, "model ready", TAGS, _READY),
    Route("GET", f"{_VERSION}/ready", model_ready, "a version ready", TAGS, _READY),
    Route("GET", "/v2/health/live", live, "the process answers", TAGS),
    Route("GET", "/v2/health/ready", health_ready, "artifacts verified (the model may still load lazily)", TAGS),
    Route("GET", f"{_NAME}/config", config, "model configuration (Triton)", TRITON, _CONFIG),
    Route("GET", f"{_VERSION}/config", config, "a version's configuration (Triton)", TRITON, _CONFIG),
    Route("GET", "/v2/models/stats", stats, "statistics of every model (Triton)", TRITON, _STATS),
    Route("GET", f"{_NAME}/stats", stats, "a model's statistics (Triton)", TRITON, _STATS),
    Route("GET", f"{_VERSION}/stats", stats, "a version's statistics (Triton)", TRITON, _STATS),
    Route(
        "POST",
        "/v2/repository/index",
        repository_index,
        "the models served here, and their state (Triton)",
        TRITON,
        _INDEX,
    ),
    Route("GET", "/openapi.json", openapi, "this document", (), in_schema=False),
)

"""TF Serving's REST API, as its documentation describes it: predict, classify, status and metadata.

`/v1/models/{name}`, `/v1/models/{name}/versions/{N}` and `/v1/models/{name}/labels/{L}` name the
served model (a label is one of MODEL_LABELS); `POST /predict` is a shorthand for the served one.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Body

from handler.core.answer import format_v1
from handler.core.service import Service
from handler.errors import BadRequest
from handler.sources import tfserving
from handler.sources.api import HttpApi, current, timed_predict
from handler.sources.http_docs import PredictRequest, PredictResponse, responses

TAGS = ["TF Serving REST"]
NO_BODY = None  # the body is documented here and read by the route; the coercer checks it


def register(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Register the TF Serving routes on one resolver."""

    def served(name: str, version: str | None = None, label: str | None = None) -> Service:
        return api.require_model(current(app), name, version, label)

    def predict(service: Service) -> dict[str, Any]:
        body = api.json_body(app)
        req = service.coercer.coerce(body)
        return format_v1(timed_predict(service, req.columns), req, service.output_names)

    @app.post(
        "/v1/models/<name>:predict",
        summary="predict",
        responses=responses("the predictions", PredictResponse),
        tags=TAGS,
    )
    def predict_named(name: str, body: Annotated[PredictRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return predict(served(name))

    @app.post(
        "/v1/models/<name>/versions/<version>:predict",
        summary="predict with a version",
        responses=responses("the predictions", PredictResponse),
        tags=TAGS,
    )
    def predict_version(name: str, version: str, body: Annotated[PredictRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return predict(served(name, version=version))

    @app.post(
        "/v1/models/<name>/labels/<label>:predict",
        summary="predict with a version label (MODEL_LABELS)",
        responses=responses("the predictions", PredictResponse),
        tags=TAGS,
    )
    def predict_label(name: str, label: str, body: Annotated[PredictRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return predict(served(name, label=label))

    @app.post(
        "/predict",
        summary="predict with the served model",
        responses=responses("the predictions", PredictResponse),
        tags=TAGS,
    )
    def predict_served(body: Annotated[PredictRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return predict(api.require_service())

    @app.post(
        "/v1/models/<name>:classify",
        summary="classify: class names and scores (models exported with class_names)",
        responses=responses("the classes and scores of each example"),
        tags=TAGS,
    )
    def classify(name: str) -> dict[str, Any]:
        service = served(name)
        classes = service.artifacts.manifest.raw.get("class_names")
        if not classes:
            raise BadRequest(f"model '{name}' was exported without class_names: use :predict")
        body = api.json_body(app)
        examples = body.get("examples")
        if not isinstance(examples, list):
            raise BadRequest("a classify body needs 'examples': an array of objects keyed by input")
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise BadRequest("'context' must be an object of inputs shared by every example")
        req = service.coercer.coerce({"instances": [{**context, **e} if isinstance(e, dict) else e for e in examples]})
        (scores,) = timed_predict(service, req.columns).values()
        return {"result": tfserving.classify_result(scores, classes)}

    def status(service: Service) -> dict[str, Any]:
        # Artifacts are verified; the model itself loads on first use.
        return {
            "model_version_status": [
                {
                    "version": service.artifacts.manifest.version,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata(service: Service) -> dict[str, Any]:
        m = service.artifacts.manifest
        return tfserving.metadata(m.name, m.version, m.signature)

    doc = responses("the version's status", None, 404, 405, 503)
    meta = responses("the serving_default signature: what a client sends and gets", None, 404, 405, 503)

    @app.get("/v1/models/<name>", summary="model status", tags=TAGS, responses=doc)
    def model_status(name: str) -> dict[str, Any]:
        return status(served(name))

    @app.get("/v1/models/<name>/versions/<version>", summary="a version's status", tags=TAGS, responses=doc)
    def version_status(name: str, version: str) -> dict[str, Any]:
        return status(served(name, version=version))

    @app.get("/v1/models/<name>/labels/<label>", summary="a label's status", tags=TAGS, responses=doc)
    def label_status(name: str, label: str) -> dict[str, Any]:
        return status(served(name, label=label))

    @app.get("/v1/models/<name>/metadata", summary="metadata (no TensorFlow import)", tags=TAGS, responses=meta)
    def model_metadata(name: str) -> dict[str, Any]:
        return metadata(served(name))

    @app.get("/v1/models/<name>/versions/<version>/metadata", summary="a version's metadata", tags=TAGS, responses=meta)
    def version_metadata(name: str, version: str) -> dict[str, Any]:
        return metadata(served(name, version=version))

    @app.get("/v1/models/<name>/labels/<label>/metadata", summary="a label's metadata", tags=TAGS, responses=meta)
    def label_metadata(name: str, label: str) -> dict[str, Any]:
        return metadata(served(name, label=label))

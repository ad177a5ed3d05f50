"""TF Serving's REST API, as its documentation describes it: predict, classify, regress, status and metadata.

`/v1/models/{name}`, `/v1/models/{name}/versions/{N}` and `/v1/models/{name}/labels/{L}` name the
served model (a label is one of MODEL_LABELS); `POST /predict` is a shorthand for the served one.
KServe's v1 protocol is the same predict; its readiness (`name`, `ready` in the model status) and
liveness (`GET /`) are answered here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Body

from handler.core.answer import format_v1
from handler.core.service import Service
from handler.errors import BadRequest
from handler.protocols import tfserving
from handler.triggers.http.openapi import ExamplesRequest, PredictRequest, PredictResponse, RegressResponse, responses
from handler.triggers.http.resolvers import HttpApi, current, model_load_failure, timed_predict

TAGS = ["TF Serving REST"]
NO_BODY = None  # the body is documented here and read by the route; the coercer checks it
CLASSIFY = "(models exported with class_names): class names and scores"
REGRESS = "(models with one scalar output): one score per example"
# served(name, version=None, label=None): the service if that is what is served here, else a 404.
Served = Callable[..., Service]


def register(app: ApiGatewayResolver, api: HttpApi) -> None:
    """Register the TF Serving routes (and KServe v1's liveness) on one resolver."""

    def served(name: str, version: str | None = None, label: str | None = None) -> Service:
        return api.require_model(current(app), name, version, label)

    _register_predict(app, api, served)
    _register_examples(app, api, served)
    _register_status(app, served)

    @app.get("/", summary="liveness (KServe v1)", tags=TAGS)
    def live() -> dict[str, Any]:
        return {"status": "alive"}


def _register_predict(app: ApiGatewayResolver, api: HttpApi, served: Served) -> None:
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


def _register_examples(app: ApiGatewayResolver, api: HttpApi, served: Served) -> None:
    """:classify and :regress: TF Serving's examples body, under the name, a version and a label."""

    def examples(service: Service) -> Any:
        """A classify or regress body's examples through the model: its one output's scores."""
        req = service.coercer.coerce(tfserving.examples_request(api.json_body(app)))
        (scores,) = timed_predict(service, req.columns).values()
        return scores

    def classify(service: Service) -> dict[str, Any]:
        classes = service.artifacts.manifest.raw.get("class_names")
        if not classes:
            raise BadRequest(f"model '{service.name}' was exported without class_names: use :predict")
        return {"result": tfserving.classify_result(examples(service), classes)}

    def regress(service: Service) -> dict[str, Any]:
        problem = tfserving.not_a_regression(service.name, service.artifacts.signature)
        if problem is not None:
            raise BadRequest(problem)
        return {"result": tfserving.regress_result(examples(service))}

    classified = responses("the classes and scores of each example")
    regressed = responses("one score per example", RegressResponse)

    @app.post("/v1/models/<name>:classify", summary=f"classify {CLASSIFY}", responses=classified, tags=TAGS)
    def classify_named(name: str, body: Annotated[ExamplesRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return classify(served(name))

    @app.post(
        "/v1/models/<name>/versions/<version>:classify",
        summary=f"classify with a version {CLASSIFY}",
        responses=classified,
        tags=TAGS,
    )
    def classify_version(
        name: str,
        version: str,
        body: Annotated[ExamplesRequest, Body()] = NO_BODY,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        return classify(served(name, version=version))

    @app.post(
        "/v1/models/<name>/labels/<label>:classify",
        summary=f"classify with a version label {CLASSIFY}",
        responses=classified,
        tags=TAGS,
    )
    def classify_label(name: str, label: str, body: Annotated[ExamplesRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return classify(served(name, label=label))

    @app.post("/v1/models/<name>:regress", summary=f"regress {REGRESS}", responses=regressed, tags=TAGS)
    def regress_named(name: str, body: Annotated[ExamplesRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return regress(served(name))

    @app.post(
        "/v1/models/<name>/versions/<version>:regress",
        summary=f"regress with a version {REGRESS}",
        responses=regressed,
        tags=TAGS,
    )
    def regress_version(
        name: str,
        version: str,
        body: Annotated[ExamplesRequest, Body()] = NO_BODY,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        return regress(served(name, version=version))

    @app.post(
        "/v1/models/<name>/labels/<label>:regress",
        summary=f"regress with a version label {REGRESS}",
        responses=regressed,
        tags=TAGS,
    )
    def regress_label(name: str, label: str, body: Annotated[ExamplesRequest, Body()] = NO_BODY) -> dict[str, Any]:  # type: ignore[assignment]
        return regress(served(name, label=label))


def _register_status(app: ApiGatewayResolver, served: Served) -> None:
    def status(service: Service) -> dict[str, Any]:
        # TF Serving's status, with KServe v1's name and ready (true unless the last model load failed).
        # The artifacts are verified; the model loads on first use, and a failed load is retried by the next
        # prediction: state START (known, not loaded), with the reason.
        failed = model_load_failure(service)
        ok = {"error_code": "OK", "error_message": ""}
        return {
            "name": service.name,
            "ready": failed is None,
            "model_version_status": [
                {
                    "version": service.artifacts.manifest.version,
                    "state": "AVAILABLE" if failed is None else "START",
                    "status": ok if failed is None else {"error_code": "UNAVAILABLE", "error_message": failed},
                }
            ],
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

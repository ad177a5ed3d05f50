"""TF Serving's REST API, as its documentation describes it: predict, classify, regress, status and metadata.

`/v1/models/{name}`, `/v1/models/{name}/versions/{N}` and `/v1/models/{name}/labels/{L}` name the
served model (a label is one of MODEL_LABELS); `POST /predict` is a shorthand for the served one.
KServe's v1 protocol is the same predict; its readiness (`name`, `ready` in the model status) and
liveness (`GET /`) are answered here too.
"""

from __future__ import annotations

from typing import Any

from handler.core.answer import format_v1
from handler.core.service import Service
from handler.errors import BadRequest
from handler.protocols import tfserving
from handler.triggers.http.routes import Call, Doc, Route, identified, not_ready, predicted

TAGS = ("TF Serving REST",)
CLASSIFY = "(models exported with class_names): class names and scores"
REGRESS = "(models with one scalar output): one score per example"


def _served(call: Call, name: str | None, version: str | None, label: str | None) -> Service:
    return call.service() if name is None else call.served(name, version, label)


def predict(call: Call, name: str | None = None, version: str | None = None, label: str | None = None) -> Any:
    service = _served(call, name, version, label)
    req = service.coercer.coerce(call.json_body())
    inference_id = call.inference_id
    return identified(format_v1(predicted(service, req.columns, inference_id), req, service.output_names), inference_id)


def _scores(call: Call, service: Service) -> Any:
    """A classify or regress body's examples through the model: its one output's scores."""
    req = service.coercer.coerce(tfserving.examples_request(call.json_body()))
    (scores,) = predicted(service, req.columns, call.inference_id).values()
    return scores


def classify(call: Call, name: str, version: str | None = None, label: str | None = None) -> Any:
    service = _served(call, name, version, label)
    classes = service.artifacts.manifest.raw.get("class_names")
    if not classes:
        raise BadRequest(f"model '{service.name}' was exported without class_names: use :predict")
    return identified({"result": tfserving.classify_result(_scores(call, service), classes)}, call.inference_id)


def regress(call: Call, name: str, version: str | None = None, label: str | None = None) -> Any:
    service = _served(call, name, version, label)
    problem = tfserving.not_a_regression(service.name, service.artifacts.signature)
    if problem is not None:
        raise BadRequest(problem)
    return identified({"result": tfserving.regress_result(_scores(call, service))}, call.inference_id)


def status(call: Call, name: str, version: str | None = None, label: str | None = None) -> Any:
    """TF Serving's status, with KServe v1's name and ready (true unless the last model load failed).

    The artifacts are verified; the model loads on first use, and a failed load is retried by the next
    prediction: state START (known, not loaded), with the reason.
    """
    service = call.served(name, version, label)
    failed = not_ready(call, service)
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


def metadata(call: Call, name: str, version: str | None = None, label: str | None = None) -> Any:
    m = call.served(name, version, label).artifacts.manifest
    return tfserving.metadata(m.name, m.version, m.signature)


def live(call: Call) -> Any:
    return {"status": "alive"}


_PREDICTED = Doc("the predictions", "PredictRequest", "PredictResponse")
_CLASSIFIED = Doc("the classes and scores of each example", "ExamplesRequest")
_REGRESSED = Doc("one score per example", "ExamplesRequest", "RegressResponse")
_STATUS = Doc("the version's status", errors=(404, 405, 503))
_META = Doc("the serving_default signature: what a client sends and gets", errors=(404, 405, 503))
_NAME, _VERSION, _LABEL = (
    "/v1/models/<name>",
    "/v1/models/<name>/versions/<version>",
    "/v1/models/<name>/labels/<label>",
)

ROUTES: tuple[Route, ...] = (
    Route("POST", f"{_NAME}:predict", predict, "predict", TAGS, _PREDICTED),
    Route("POST", f"{_VERSION}:predict", predict, "predict with a version", TAGS, _PREDICTED),
    Route("POST", f"{_LABEL}:predict", predict, "predict with a version label (MODEL_LABELS)", TAGS, _PREDICTED),
    Route("POST", f"{_NAME}:classify", classify, f"classify {CLASSIFY}", TAGS, _CLASSIFIED),
    Route("POST", f"{_VERSION}:classify", classify, f"classify with a version {CLASSIFY}", TAGS, _CLASSIFIED),
    Route("POST", f"{_LABEL}:classify", classify, f"classify with a version label {CLASSIFY}", TAGS, _CLASSIFIED),
    Route("POST", f"{_NAME}:regress", regress, f"regress {REGRESS}", TAGS, _REGRESSED),
    Route("POST", f"{_VERSION}:regress", regress, f"regress with a version {REGRESS}", TAGS, _REGRESSED),
    Route("POST", f"{_LABEL}:regress", regress, f"regress with a version label {REGRESS}", TAGS, _REGRESSED),
    Route("POST", "/predict", predict, "predict with the served model", TAGS, _PREDICTED),
    Route("GET", "/", live, "liveness (KServe v1)", TAGS),
    Route("GET", _NAME, status, "model status", TAGS, _STATUS),
    Route("GET", _VERSION, status, "a version's status", TAGS, _STATUS),
    Route("GET", _LABEL, status, "a label's status", TAGS, _STATUS),
    Route("GET", f"{_NAME}/metadata", metadata, "metadata (no TensorFlow import)", TAGS, _META),
    Route("GET", f"{_VERSION}/metadata", metadata, "a version's metadata", TAGS, _META),
    Route("GET", f"{_LABEL}/metadata", metadata, "a label's metadata", TAGS, _META),
)

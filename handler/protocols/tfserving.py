"""TF Serving's REST metadata and its classify and regress bodies, as its documentation shows them.

`GET /v1/models/{name}/metadata` answers a `SignatureDef` under `serving_default`: each input
is a feature of the signature (what a client puts in `instances` or `inputs`), each output a
model output, with `DT_*` dtypes and `tensor_shape.dim[].size` as strings ("-1" for the batch
and any free dimension).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handler.core.signature import SIGNATURE_NAME, Signature, TensorSpec
from handler.core.value_rules import kind_of
from handler.errors import BadRequest, FieldError, InvalidInput

PREDICT_METHOD = "tensorflow/serving/predict"


def tensor_info(spec: TensorSpec) -> dict[str, Any]:
    dims = [-1, *(-1 if d is None else d for d in spec.shape)]
    return {
        "dtype": spec.tf_dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
        "name": f"{SIGNATURE_NAME}_{spec.name}:0",
    }


def metadata(name: str, version: str, signature: Signature) -> dict[str, Any]:
    """The body of `GET /v1/models/{name}[/versions/{v}]/metadata`."""
    signature_def = {
        "inputs": {f.name: tensor_info(f) for f in signature.features},
        "outputs": {o.name: tensor_info(o) for o in signature.outputs},
        "method_name": PREDICT_METHOD,
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE_NAME: signature_def}}},
    }


def classify_result(scores: Any, classes: list[str]) -> list[list[list[Any]]]:
    """Per example, [[class, score], ...] as TF Serving's classify answers (a sigmoid's one score is [1-p, p])."""
    import numpy as np

    arr = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    if arr.shape[1] == 1 and len(classes) == 2:
        arr = np.concatenate([1.0 - arr, arr], axis=1)
    if arr.shape[1] != len(classes):
        raise ValueError(f"{arr.shape[1]} scores per example for {len(classes)} class names")
    return [[[c, float(s)] for c, s in zip(classes, row, strict=True)] for row in arr.tolist()]


def examples_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A classify or regress body -> the predict body of its examples, each with the `context`'s inputs added.

    TF Serving's body is `{"signature_name"?, "context"?, "examples": [{input: value, ...}, ...]}`.
    """
    examples = body.get("examples")
    if not isinstance(examples, list):
        raise BadRequest("the body needs 'examples': an array of objects, each keyed by input name")
    context = body.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise BadRequest(f"'context' must be an object of inputs shared by every example, got {kind_of(context)}")
    # An array of values would silently drop the context's inputs: TF Serving's examples are objects.
    errors = [
        FieldError(i, None, f"an example must be an object keyed by input name, got {kind_of(e)}")
        for i, e in enumerate(examples)
        if not isinstance(e, dict)
    ]
    if errors:
        raise InvalidInput(errors)
    request: dict[str, Any] = {"instances": [{**context, **e} for e in examples]}
    if "signature_name" in body:  # checked by the coercer, as for predict
        request["signature_name"] = body["signature_name"]
    return request


def not_a_regression(name: str, signature: Signature) -> str | None:
    """Why :regress cannot answer for this model (None: it can): it needs one scalar score per example."""
    outputs = signature.outputs
    if len(outputs) != 1:
        names = ", ".join(o.name for o in outputs)
        return (
            f"model '{name}' has {len(outputs)} outputs ({names}): :regress answers one score per example, "
            f"for a model with one output of shape [] or [1]; use :predict"
        )
    (out,) = outputs
    if out.shape not in ((), (1,)) or out.kind == "string":
        return (
            f"model '{name}' answers output '{out.name}' as {out.describe()} per example: :regress answers one "
            f"number per example, for a model with one numeric output of shape [] or [1]; use :predict"
        )
    return None


def regress_result(scores: Any) -> list[float]:
    """TF Serving's regress result: one float per example."""
    import numpy as np

    return [float(s) for s in np.asarray(scores, dtype=np.float64).reshape(len(scores)).tolist()]

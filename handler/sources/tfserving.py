"""TF Serving's REST metadata, as its documentation shows it, for what a client sends.

`GET /v1/models/{name}/metadata` answers a `SignatureDef` under `serving_default`: each input
is a feature of the signature (what a client puts in `instances` or `inputs`), each output a
model output, with `DT_*` dtypes and `tensor_shape.dim[].size` as strings ("-1" for the batch
and any free dimension).
"""

from __future__ import annotations

from typing import Any

from handler.core.signature import Signature, TensorSpec

SIGNATURE_NAME = "serving_default"
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

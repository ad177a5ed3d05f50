"""The reference models and their golden cases, and a checker of answers written apart from the server.

The expected values are always the committed `golden.json` (what training computed). The checker
reads an answer by TF Serving's documented layout, independently of `handler.core.golden`:
- `predictions`: one entry per instance; with several outputs each entry is an object with
  exactly the output names;
- `outputs`: the batch for one output, an object of batches for several; without the batch
  dimension when the request had none;
- OIP v2: one output tensor per output, `data` flat in row-major order, `shape` [n, ...].
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"
MODELS = ("churn", "digits", "reviews", "recommender", "sensor")
ZOO = MODELS[1:]  # every model but the tabular reference


def model_dir(name: str) -> Path:
    return ARTIFACTS / name


@functools.cache
def golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((model_dir(name) / "golden.json").read_text())
    return data


@functools.cache
def manifest(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((model_dir(name) / "manifest.json").read_text())
    return data


def output_names(name: str) -> list[str]:
    return [o["name"] for o in manifest(name)["signature"]["outputs"]]


def feature_names(name: str) -> list[str]:
    return [f["name"] for f in manifest(name)["signature"]["features"]]


def cases(name: str) -> list[dict[str, Any]]:
    return list(golden(name)["cases"])


def _close(name: str, case: dict[str, Any], output: str, actual: Any, how: str) -> float:
    """Assert one output equals training's within the golden tolerance; return the largest difference."""
    tol = golden(name)["tolerance"]
    expected = np.asarray(case["expected"][output])
    got = np.asarray(actual)
    assert got.shape == expected.shape, (
        f"{name}/{case['name']} via {how}: output '{output}' has shape {list(got.shape)}, "
        f"training's {list(expected.shape)}"
    )
    if expected.dtype.kind not in "biuf":
        assert got.tolist() == expected.tolist(), f"{name}/{case['name']} via {how}: output '{output}' differs"
        return 0.0
    got64, exp64 = got.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(got64 - exp64)
    limit = tol["atol"] + tol["rtol"] * np.abs(exp64)
    worst = int(np.argmax(diff - limit)) if diff.size else 0
    assert (diff <= limit).all(), (
        f"{name}/{case['name']} via {how}: output '{output}' at {np.unravel_index(worst, diff.shape)} is "
        f"{got64.flat[worst]!r}, training gave {exp64.flat[worst]!r}"
    )
    return float(diff.max()) if diff.size else 0.0


def check_v1(name: str, case: dict[str, Any], response: Any, how: str) -> float:
    """A TF Serving v1 answer to a golden request holds training's outputs, laid out as TF Serving lays them."""
    outputs = output_names(name)
    key = "predictions" if "instances" in case["request"] else "outputs"
    assert isinstance(response, dict) and list(response) == [key], f"{name}/{case['name']} via {how}: {response!r:.300}"
    body = response[key]
    worst = 0.0
    if key == "predictions":
        n = len(case["expected"][outputs[0]])
        assert isinstance(body, list) and len(body) == n, f"{name}/{case['name']} via {how}: not one entry per instance"
        for out in outputs:
            if len(outputs) == 1:
                values = body
            else:
                for entry in body:
                    assert isinstance(entry, dict) and sorted(entry) == sorted(outputs), (
                        f"{name}/{case['name']} via {how}: an instance's answer is not keyed by {outputs}"
                    )
                values = [entry[out] for entry in body]
            worst = max(worst, _close(name, case, out, values, how))
        return worst
    for out in outputs:
        if len(outputs) == 1:
            value = body
        else:
            assert isinstance(body, dict) and sorted(body) == sorted(outputs), f"{name}/{case['name']} via {how}"
            value = body[out]
        worst = max(worst, _close(name, case, out, value if case["batched"] else [value], how))
    return worst


def check_v2(name: str, case: dict[str, Any], response: Any, how: str) -> float:
    """An OIP v2 answer holds one tensor per output with training's values."""
    outputs = output_names(name)
    tensors = {t["name"]: t for t in response["outputs"]}
    assert sorted(tensors) == sorted(outputs), f"{name}/{case['name']} via {how}: outputs {sorted(tensors)}"
    worst = 0.0
    for out in outputs:
        t = tensors[out]
        values = np.asarray(t["data"]).reshape(t["shape"])
        worst = max(worst, _close(name, case, out, values, how))
    return worst


def named_rows(case: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The rows of a golden request sent as objects keyed by feature, or None for other layouts."""
    rows = case["request"].get("instances")
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and "b64" not in r for r in rows):
        return rows
    return None


_OIP = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
    "string": "BYTES",
}


def v2_body(name: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An OIP v2 infer body with one tensor per feature, built from named rows as a v2 client would build it.

    Numbers go in the feature's own datatype (a client converts its numeric strings and booleans first);
    None when some value has no plain JSON form in v2 (a {"b64": ...} leaf).
    """
    tensors = []
    for feature in manifest(name)["signature"]["features"]:
        batch = np.asarray([r[feature["name"]] for r in rows], dtype=object)
        flat = batch.reshape(-1).tolist()
        if any(isinstance(v, dict) for v in flat):
            return None
        datatype = _OIP[feature["dtype"]]
        if datatype.startswith("FP"):
            flat = [float(v) for v in flat]
        elif datatype != "BYTES":
            flat = [int(float(v)) for v in flat]
        tensors.append({"name": feature["name"], "shape": list(batch.shape), "datatype": datatype, "data": flat})
    return {"inputs": tensors}

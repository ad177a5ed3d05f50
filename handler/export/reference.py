"""The training side's own answers for the sample requests: the reference the serving path must match.

The reference never goes through the server's coercion. With a numpy preprocessor the training
script gives it (`expected`: what its pipeline computed on the inputs as training built them).
Without one, it is `model.predict` on the request's values put into Keras' own input structure
here, with plain `np.asarray`: a second, independent reading of the request.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from handler.core.coerce import depth
from handler.core.golden import CaseResult, table
from handler.core.preprocessing import Preprocessor
from handler.core.signature import Signature, numpy_dtype
from handler.errors import ExportError, InvalidInput


def jsonable(value: Any) -> Any:
    """A sample request as a client sends it: numpy scalars and arrays become JSON numbers and lists."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _leafs(value: Any) -> Any:
    """{"b64": ...} leaves -> bytes, for Keras."""
    if isinstance(value, dict) and list(value) == ["b64"]:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_leafs(v) for v in value]
    return value


def keras_inputs(request: Mapping[str, Any], signature: Signature) -> tuple[Any, bool]:
    """A v1 request -> (the model's inputs in Keras' structure, whether the request had the batch axis)."""
    specs = signature.inputs
    names = [s.name for s in specs]
    single = specs[0] if len(specs) == 1 else None
    if "instances" in request:
        rows = request["instances"]
        columns: dict[str, list[Any]] = {n: [] for n in names}
        for row in rows:
            named = row if isinstance(row, dict) and list(row) != ["b64"] else None
            if named is None and single is None:
                raise ExportError("a row of a multi-input model must be an object keyed by input name")
            for n in names:
                columns[n].append(named[n] if named is not None else row)
        batched = True
    else:
        given = request["inputs"]
        if not isinstance(given, dict) or (single is not None and list(given) == ["b64"]):
            if single is None:
                raise ExportError("'inputs' of a multi-input model must be an object keyed by input name")
            given = {single.name: given}
        batched = any(depth(given[s.name]) > s.rank for s in specs)
        columns = {s.name: (given[s.name] if batched else [given[s.name]]) for s in specs}
    arrays = {
        s.name: np.asarray(_leafs(columns[s.name]), dtype=numpy_dtype(s.dtype) if s.dtype != "string" else object)
        for s in specs
    }
    if signature.input_structure == "single":
        return arrays[names[0]], batched
    if signature.input_structure == "list":
        return [arrays[n] for n in names], batched
    return arrays, batched


def by_output_name(answer: Any, signature: Signature, where: str) -> dict[str, np.ndarray]:
    """A model's answer (an array, a list of arrays, or a dict) -> {output name: array}."""
    names = signature.output_names
    if isinstance(answer, Mapping):
        if sorted(answer) != sorted(names):
            raise ExportError(f"{where} has outputs {sorted(answer)}, but the model's are {names}")
        return {n: np.asarray(answer[n]) for n in names}
    if isinstance(answer, (list, tuple)):
        if len(answer) != len(names):
            raise ExportError(f"{where} has {len(answer)} outputs, but the model has {len(names)}: {names}")
        return {n: np.asarray(a) for n, a in zip(names, answer, strict=True)}
    if len(names) != 1:
        raise ExportError(f"{where} is one array, but the model has {len(names)} outputs: give a dict keyed by {names}")
    return {names[0]: np.asarray(answer)}


def predicted(
    model: Any, request: Mapping[str, Any], signature: Signature, case: str
) -> tuple[dict[str, np.ndarray], bool]:
    """model.predict on the request read into Keras' structure: (outputs by name, batched)."""
    try:
        x, batched = keras_inputs(request, signature)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"sample request '{case}' cannot be read as the model's inputs ({type(exc).__name__}: {exc}): "
            f"{_needs(signature)}"
        ) from None
    if any(s.dtype == "string" for s in signature.inputs):
        import tensorflow as tf  # model.predict refuses numpy string arrays of rank 2; tensors it takes

        x = tf.nest.map_structure(tf.constant, x)
    try:
        answer = model.predict(x, verbose=0)
    except Exception as exc:  # Keras' own input and shape errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"sample request '{case}': the model does not run on it ({first}): {_needs(signature)}"
        ) from None
    return by_output_name(answer, signature, f"model.predict for '{case}'"), batched


def _needs(signature: Signature) -> str:
    want = "; ".join(f"'{s.name}': {s.describe()}" for s in signature.inputs)
    return f"the server needs, per example, {want}"


def is_batched(request: Mapping[str, Any], signature: Signature) -> bool:
    """Whether a v1 request carries the batch axis: rows always; columns when nested deeper than the features."""
    if "instances" in request:
        return True
    given = request["inputs"]
    features = signature.features
    if isinstance(given, dict) and not (len(features) == 1 and list(given) == ["b64"]):
        return any(depth(given[f.name]) > f.rank for f in features if f.name in given)
    if len(features) > 1:  # tabular: one ordered example, or a list of them
        return depth(given) > 1
    return depth(given) > features[0].rank


def served_otherwise(results: list[CaseResult], preprocessor: Preprocessor | None) -> str:
    """Why the serving path answers sample requests otherwise than training, blaming only what is there.

    The trained and the reloaded model agree when this is asked (the export checked it first).
    """
    bad = [r for r in results if not r.ok]
    refused = [r.name for r in bad if r.detail.startswith(f"{InvalidInput.__name__}:")]
    why = []
    if refused:
        why.append(
            f"the serving path refuses {', '.join(refused)} as it would a client's request (the reasons are below): "
            f"a sample request must be sent exactly as clients send theirs"
        )
    answered_otherwise = len(refused) < len(bad)
    if answered_otherwise and preprocessor is None:
        why.append(
            "the answers differ from `expected`, or from model.predict on the request read as Keras reads it: "
            "check that `expected` holds model.predict's answer to each request as it is sent"
        )
    elif answered_otherwise and preprocessor is not None:
        why.append(
            "with a numpy preprocessor this means preprocessing.json does not compute what training computed "
            "(for example statistics fitted per column where training normalised globally)"
        )
        if preprocessor.target is not None:
            why.append(
                "answers are served in training's units (the target un-scaled), so `expected` must be too: "
                "target.unscale(model.predict(...))"
            )
    return (
        f"{len(bad)} of {len(results)} sample requests are answered otherwise by the serving path than by your "
        f"training pipeline; {'; '.join(why)}:\n" + table(results)
    )

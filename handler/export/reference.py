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

from handler.core.coerce import CoercePolicy, Coercer, depth
from handler.core.golden import CaseResult, table
from handler.core.preprocessing import Preprocessor
from handler.core.signature import Signature, TensorSpec, numpy_dtype
from handler.core.value_rules import is_bare, one_value
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


def _example(spec: TensorSpec, value: Any) -> Any:
    """One example's value; an input of shape [1] takes its one value bare (54 is [54]), as Keras does."""
    return [value] if one_value(spec) and is_bare(value) else value


def _column_is_batch(spec: TensorSpec, value: Any) -> bool | None:
    """Nested deeper than the input's rank: a batch. An array for shape [1] ([54] or [54, 60]): either (None)."""
    d = depth(value)
    return None if one_value(spec) and d == 1 else d > spec.rank


def _row_columns(rows: list[Any], specs: tuple[TensorSpec, ...]) -> dict[str, list[Any]]:
    """Rows (objects by input name; a one-input model's values; scalar inputs' values in order) -> columns."""
    names = [s.name for s in specs]
    ordered = len(specs) > 1 and all(s.rank == 0 for s in specs)
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for row in rows:
        if ordered and isinstance(row, list):  # tabular: the values in input order
            row = dict(zip(names, row, strict=True))
        named = row if isinstance(row, dict) and list(row) != ["b64"] else None
        if named is None and len(specs) > 1:
            raise ExportError("a row of a multi-input model must be an object keyed by input name")
        for s in specs:
            columns[s.name].append(_example(s, named[s.name] if named is not None else row))
    return columns


def keras_inputs(request: Mapping[str, Any], signature: Signature) -> tuple[Any, bool]:
    """A v1 request -> (the model's inputs in Keras' structure, whether the request had the batch axis).

    Every array has the input's own rank, [n, *shape], whatever form the request took: Keras' predict function
    traced for one rank and then called with another fails ("as_list() is not defined on an unknown TensorShape").
    """
    specs = signature.inputs
    names = [s.name for s in specs]
    single = specs[0] if len(specs) == 1 else None
    given = request.get("inputs")
    if "instances" in request:
        columns, batched = _row_columns(request["instances"], specs), True
    elif isinstance(given, list) and single is None and all(s.rank == 0 for s in specs):
        batched = depth(given) > 1  # tabular: one ordered example, or a list of them
        columns = _row_columns(given if batched else [given], specs)
    else:
        if not isinstance(given, dict) or (single is not None and list(given) == ["b64"]):
            if single is None:
                raise ExportError("'inputs' of a multi-input model must be an object keyed by input name")
            given = {single.name: given}
        batched = any(b for s in specs if (b := _column_is_batch(s, given[s.name])) is not None)
        columns = {
            s.name: [_example(s, v) for v in given[s.name]] if batched else [_example(s, given[s.name])] for s in specs
        }
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
    """model.predict on the request read into Keras' structure: (outputs by name, batched).

    A request the server refuses is refused here first, with the server's reasons: the two readings must agree.
    """
    try:
        Coercer(signature, CoercePolicy(max_batch_size=1 << 30)).coerce(request)
    except InvalidInput as exc:
        raise ExportError(
            f"sample request '{case}' is refused by the serving path, as a client's would be: {exc.message}; "
            f"{_needs(signature)}"
        ) from None
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
        answer = _predict(model, x)
    except Exception as exc:  # Keras' own input and shape errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"sample request '{case}': the model does not run on it ({first}): {_needs(signature)}"
        ) from None
    return by_output_name(answer, signature, f"model.predict for '{case}'"), batched


def _predict(model: Any, x: Any) -> Any:
    """model.predict; once more on a fresh predict function if it fails.

    The training script may have called model.predict with inputs of another rank (a FeatureSpace model on
    [n] where its Input takes [n, 1]): Keras then retraces with an unknown rank, which its own input handling
    cannot read. A model that does not run on the inputs fails the second time too.
    """
    try:
        return model.predict(x, verbose=0)
    except Exception:
        if not hasattr(model, "make_predict_function"):
            raise
        model.make_predict_function(force=True)
        return model.predict(x, verbose=0)


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
        return any(b for f in features if f.name in given and (b := _column_is_batch(f, given[f.name])) is not None)
    if len(features) > 1:  # tabular: one ordered example, or a list of them
        return depth(given) > 1
    return bool(_column_is_batch(features[0], given))


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

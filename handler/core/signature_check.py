"""The manifest's signature against what the model really takes: any difference is named, field by field.

The digest refuses a manifest edited by hand, but not one edited with its digest redone. Coercion, the
preprocessing, the runtimes and the answers all read the manifest's signature: one that names another input,
dtype or shape than the model takes would refuse correct requests (422), hand the model what it cannot take
(an error inside the graph, a 500), or label its answers wrongly. So the signature is compared, once per
process, with what is really there:

- at open, with no model: the features (what a client sends) against what preprocessing.json reads or,
  without one, against the model's inputs, which they then are;
- at load, from what the runtime already holds: the loaded Keras model's input and output tensors, read as
  the export read them (handler/export/keras_model.py), or the LiteRT signature runner's details. No call,
  no copy: attribute reads over a few tensors.

Each function returns the differences in words (empty: none); the caller refuses the artifact with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from handler.core.signature import Signature, Structure, TensorSpec, describe

# A tensor as a runtime holds it: (name, dtype as the manifest names it, per-example shape with None for any).
Found = tuple[str, str, tuple[int | None, ...]]
_STRUCTURES: dict[str, str] = {"single": "one tensor", "list": "a list", "dict": "a dict"}
_SHOWN = 80  # characters of a differing value (a vocabulary) shown in a message
_TAKEN = ("index_range", "vocabulary")  # what a feature's values may be, beside its dtype and shape


def _names(specs: Sequence[Any]) -> str:
    return ", ".join(s if isinstance(s, str) else s[0] for s in specs)


def _differences(
    side: str, manifest: Sequence[TensorSpec], found: Sequence[Found], *, ordered: bool, loose: bool = False
) -> list[str]:
    """What differs between the manifest's tensors of one side and the model's. `ordered`: the model takes them
    by position (a list), so the order is part of the signature; `loose`: a dimension the runtime leaves free
    (LiteRT's -1 on an output, which the converter derives rather than declares) matches any."""
    names, found_names = [s.name for s in manifest], [n for n, _, _ in found]
    if (names != found_names) if ordered else (sorted(names) != sorted(found_names)):
        return [f"the manifest's {side}s are {_names(names)} but the model's are {_names(found_names)}"]
    held = {name: (dtype, shape) for name, dtype, shape in found}
    out = []
    for spec in manifest:
        dtype, shape = held[spec.name]
        same_shape = len(shape) == spec.rank and all(
            a == b or (loose and b is None) for a, b in zip(spec.shape, shape, strict=True)
        )
        if spec.dtype != dtype or not same_shape:
            held_as = describe(dtype, shape)
            out.append(f"{side} '{spec.name}' is {spec.describe()} in the manifest but {held_as} in the model")
    return out


def feature_differences(features: Sequence[TensorSpec], expected: Sequence[TensorSpec], source: str) -> list[str]:
    """The manifest's features against what `source` says a client sends (the same names, in order, already checked):
    dtype, shape, and the values taken (id ranges, strict vocabularies). Not a fill value: it follows from the fitted
    statistics, and a re-export that changes them writes both files."""
    out = []
    for feature, want in zip(features, expected, strict=True):
        if (feature.dtype, feature.shape) != (want.dtype, want.shape):
            wanted = want.describe()
            out.append(f"feature '{feature.name}' is {feature.describe()}, but {wanted} in {source}")
            continue
        mine, theirs = feature.to_dict(), want.to_dict()
        for key in _TAKEN:
            if mine.get(key) != theirs.get(key):
                shown = [str(v)[:_SHOWN] for v in (mine.get(key), theirs.get(key))]
                out.append(f"feature '{feature.name}' has {key} {shown[0]}, but {shown[1]} in {source}")
    return out


def _keras_found(name: str, tensor: Any) -> Found:
    return name, str(tensor.dtype), tuple(None if d is None else int(d) for d in tensor.shape[1:])


def _structure(value: Any) -> Structure:
    return "dict" if isinstance(value, dict) else "list" if isinstance(value, (list, tuple)) else "single"


def keras_differences(model: Any, signature: Signature) -> list[str]:
    """The manifest's signature against the loaded Keras model: its inputs' structure, names, dtypes and shapes, and
    its outputs' (named by their dict keys, else output_0, output_1, ... in order, as TF Serving names them)."""
    struct = getattr(model, "_inputs_struct", None)
    if struct is None:  # Sequential: its one input
        struct = list(getattr(model, "inputs", None) or [])
        if len(struct) != 1:
            return ["the model has no defined inputs (a subclassed model that was never wrapped in a keras.Model)"]
        struct = struct[0]
    in_kind = _structure(struct)
    if in_kind == "dict":
        inputs = [_keras_found(name, t) for name, t in struct.items()]
    else:
        inputs = [_keras_found(t.name, t) for t in ([struct] if in_kind == "single" else struct)]

    out_struct: Any = getattr(model, "_outputs_struct", None)
    if out_struct is None:
        out_struct = model.outputs[0] if len(model.outputs) == 1 else list(model.outputs)
    out_kind = _structure(out_struct)
    if out_kind == "dict":
        outputs = [_keras_found(name, t) for name, t in out_struct.items()]
    else:
        listed = [out_struct] if out_kind == "single" else list(out_struct)
        outputs = [_keras_found(f"output_{i}", t) for i, t in enumerate(listed)]

    problems = []
    structures = (("input", in_kind, signature.input_structure), ("output", out_kind, signature.output_structure))
    for side, kind, expected in structures:
        if kind != expected:
            problems.append(
                f"the manifest has the model's {side}s as {_STRUCTURES.get(expected, repr(expected))} but the model's "
                f"are {_STRUCTURES[kind]}"
            )
    problems += _differences("input", signature.inputs, inputs, ordered=in_kind != "dict")
    problems += _differences("output", signature.outputs, outputs, ordered=out_kind != "dict")
    return problems


def _litert_found(name: str, details: Mapping[str, Any]) -> Found:
    dtype = np.dtype(details["dtype"])
    shape = tuple(None if int(d) < 0 else int(d) for d in list(details["shape_signature"])[1:])
    return name, "string" if dtype.kind in "SUO" else dtype.name, shape


def litert_differences(
    inputs: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, Mapping[str, Any]], signature: Signature
) -> list[str]:
    """The manifest's signature against the LiteRT signature runner's input and output details, by name."""
    found_in = [_litert_found(name, d) for name, d in inputs.items()]
    found_out = [_litert_found(name, d) for name, d in outputs.items()]
    return _differences("input", signature.inputs, found_in, ordered=False) + _differences(
        "output", signature.outputs, found_out, ordered=False, loose=True
    )

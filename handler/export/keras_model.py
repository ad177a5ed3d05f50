"""What the export reads off a Keras model: its signature, its id ranges and its custom objects.

Names are read from the model as the server reloads it: an unnamed `keras.Input` gets another
name after save and load, and the server only ever sees the reloaded one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from handler.core.preprocessing import Preprocessor
from handler.core.signature import DTYPES, Signature, Structure, TensorSpec
from handler.errors import ExportError

# Layers whose integer input must lie in [0, size): reading past it is an error (Embedding on CPU)
# or a silent wrong answer (CategoryEncoding drops it).
_INDEX_SIZE_ATTRIBUTES = {"Embedding": "input_dim", "CategoryEncoding": "num_tokens"}
_LOOKUPS = ("StringLookup", "IntegerLookup")


def _structure(value: Any) -> Structure:
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return "single"


def _input_structure(model: Any) -> tuple[Structure, list[tuple[str, Any]]]:
    """(structure, [(name, KerasTensor)]) of the model's inputs, in the order the model takes them."""
    struct = getattr(model, "_inputs_struct", None)
    if struct is None:  # Sequential: one input; a subclassed model has none
        tensors = list(getattr(model, "inputs", None) or [])
        if len(tensors) != 1:
            raise ExportError(
                "the model has no defined inputs: build it with keras.Input (a Functional or Sequential model with an "
                "Input), so its signature is known before it serves; wrap a subclassed model in one: "
                "inputs = keras.Input(shape=..., name=...); keras.Model(inputs, net(inputs))"
            )
        return "single", [(tensors[0].name, tensors[0])]
    kind = _structure(struct)
    if kind == "dict":
        for key, tensor in struct.items():
            if key != tensor.name:
                raise ExportError(
                    f"the model's dict input '{key}' is a keras.Input named '{tensor.name}': name the Input "
                    f"after its key (keras.Input(..., name='{key}')), so clients, TF Serving and LiteRT see one name"
                )
        return "dict", list(struct.items())
    tensors = [struct] if kind == "single" else list(struct)
    return kind, [(t.name, t) for t in tensors]


def _output_structure(model: Any) -> tuple[Structure, list[tuple[str, Any]]]:
    """(structure, [(name, KerasTensor)]): dict outputs by key, others as TF Serving names them (output_0, ...)."""
    struct: Any = getattr(model, "_outputs_struct", None)
    if struct is None:
        struct = model.outputs[0] if len(model.outputs) == 1 else list(model.outputs)
    kind = _structure(struct)
    if kind == "dict":
        return "dict", list(struct.items())
    tensors = [struct] if kind == "single" else list(struct)
    return kind, [(f"output_{i}", t) for i, t in enumerate(tensors)]


def _spec(name: str, tensor: Any, where: str, index_range: tuple[int, int] | None = None) -> TensorSpec:
    if getattr(tensor, "sparse", False) or getattr(tensor, "ragged", False):
        raise ExportError(
            f"{where} '{name}' is sparse or ragged: neither REST protocol can carry it; take a dense, padded input"
        )
    dtype = str(tensor.dtype)
    if dtype not in DTYPES:
        raise ExportError(
            f"{where} '{name}' has dtype {dtype}, which the REST protocols cannot carry: use one of {', '.join(DTYPES)}"
        )
    shape = tuple(None if d is None else int(d) for d in tensor.shape[1:])
    return TensorSpec(name, dtype, shape, index_range=index_range)


def _index_range(model: Any, tensor: Any) -> tuple[int, int] | None:
    """The tightest [0, size) of the id layers that read this input directly, if any."""
    sizes = []
    for layer in model.layers:
        attr = _INDEX_SIZE_ATTRIBUTES.get(type(layer).__name__)
        if attr is None:
            continue
        for node in layer._inbound_nodes:
            if any(t is tensor for t in node.input_tensors):
                sizes.append(int(getattr(layer, attr)))
    return (0, min(sizes)) if sizes else None


def _strict_vocabulary(model: Any, tensor: Any) -> frozenset[str] | frozenset[int] | None:
    """The values an input takes when a lookup without an OOV index reads it directly, else None.

    `StringLookup`/`IntegerLookup(num_oov_indices=0)` (FeatureSpace's `*_categorical(num_oov_indices=0)`) fail
    inside the graph on any other value: the server refuses such a value first, naming it (a 422, not a 500).
    """
    found: set[Any] | None = None
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__ not in _LOOKUPS or layer.num_oov_indices > 0 or layer.invert:
            continue
        if not any(any(t is tensor for t in node.input_tensors) for node in layer._inbound_nodes):
            continue
        values = {v if isinstance(v, str) else int(v) for v in layer.get_vocabulary(include_special_tokens=False)}
        if layer.mask_token is not None:
            values.add(layer.mask_token if isinstance(layer.mask_token, str) else int(layer.mask_token))
        found = values if found is None else found & values
    return frozenset(found) if found is not None else None


def signature_of(model: Any, preprocessor: Preprocessor | None) -> Signature:
    """The model's signature; with a preprocessor, its raw columns are what clients send."""
    in_kind, inputs = _input_structure(model)
    out_kind, outputs = _output_structure(model)
    input_specs = []
    for name, tensor in inputs:
        rng = _index_range(model, tensor) if str(tensor.dtype).startswith(("int", "uint")) else None
        spec = _spec(name, tensor, "input", rng)
        input_specs.append(replace(spec, vocabulary=_strict_vocabulary(model, tensor)))
    output_specs = tuple(_spec(name, tensor, "output") for name, tensor in outputs)
    if preprocessor is None:
        features = tuple(input_specs)
    else:
        only = input_specs[0]
        if len(input_specs) != 1 or only.shape != (preprocessor.output_width,) or only.kind != "float":
            raise ExportError(
                f"the preprocessor produces one float matrix of width {preprocessor.output_width}, but the model takes "
                f"{', '.join(f'{s.name}: {s.describe()}' for s in input_specs)}: give a model with one float input of "
                f"shape ({preprocessor.output_width},), or no preprocessor (preprocessing in the graph)"
            )
        features = preprocessor.feature_specs()
        wrong = preprocessor.target.problems(output_specs) if preprocessor.target is not None else []
        if wrong:
            raise ExportError("the preprocessor's target scaling does not fit the model: " + "; ".join(wrong))
    return Signature(
        features=features,
        inputs=tuple(input_specs),
        outputs=output_specs,
        input_structure=in_kind,
        output_structure=out_kind,
    )


def custom_objects(model: Any, modules: tuple[str, ...] | None) -> tuple[list[str], list[str]]:
    """(registered names, their modules) of the model's custom layers; refuse ones the server could not load.

    `modules`: the modules the artifact carries or records (custom_object_modules); None accepts any importable one.
    """
    import keras

    classes: dict[str, type] = {}
    for layer in [model, *model._flatten_layers(include_self=False)]:
        cls = type(layer)
        if not cls.__module__.startswith("keras"):
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    names, found = [], []
    for cls in classes.values():
        name = keras.saving.get_registered_name(cls)
        if keras.saving.get_registered_object(name) is not cls:
            raise ExportError(
                f"custom layer {cls.__qualname__} is not registered: decorate it with "
                f"@keras.saving.register_keras_serializable(package=...), or the server cannot load the model"
            )
        if cls.__module__ == "__main__":
            raise ExportError(
                f"custom layer {cls.__qualname__} is defined in the training script itself (__main__), which the "
                f"server cannot import: move it to a module of its own, which the artifact then carries in code/"
            )
        if modules is not None and cls.__module__ not in modules:
            raise ExportError(
                f"custom layer {cls.__qualname__} is defined in {cls.__module__}, which is not among the modules the "
                f"export was given ({', '.join(modules)}): add it to custom_object_modules, so the artifact carries it"
            )
        names.append(name)
        found.append(cls.__module__)
    return sorted(names), sorted(set(found))

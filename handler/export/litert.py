"""Convert a Keras model to LiteRT through the SavedModel route, and say plainly why when it cannot.

`TFLiteConverter.from_keras_model` fails on string lookups and on LSTMs; exporting a SavedModel
first (`model.export`) and converting that keeps the serving signature, with its input and
output names, and converts string lookups. What still does not convert is named with its fix,
read off the model: a recurrent layer left rolled (its TensorList ops do not lower; `unroll=True`
over a fixed length does), and data augmentation layers (inactive at inference, but their random
ops are in the exported graph).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

_MLIR_LOCATION = re.compile(r"^loc\(")
_HINTS = {
    "TensorList": "a recurrent layer (LSTM, GRU) over a dynamic batch does not lower to LiteRT ops: "
    "build it with unroll=True (fine for short, fixed-length sequences)",
    "Flex": "the model uses TensorFlow ops that LiteRT has no builtin for",
}
# Keras' image augmentation layers (RandomFlip, RandomRotation, RandomZoom, RandomContrast, ... and these).
_AUGMENTATION = frozenset({"RandAugment", "AugMix", "MixUp", "CutMix", "Solarization"})


class ConversionFailed(Exception):
    """The conversion failed; the message is its cause, already read, with the hints for the model converted."""


def _strip_location(text: str) -> str:
    """Drop an MLIR `loc(...)` prefix (balanced parentheses) and the ': ' after it."""
    if not _MLIR_LOCATION.match(text):
        return text
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[i + 1 :].lstrip(": ").strip()
    return text


def _errors(exc: BaseException) -> str:
    """The converter's errors, root cause first, without MLIR locations, notes or repeats."""
    errors: list[str] = []
    for line in str(exc).splitlines():
        if "error:" not in line:
            continue
        message = _strip_location(line.split("error:", 1)[1].strip())
        if message and message not in errors:
            errors.append(message)
    return " | ".join(errors) if errors else (str(exc).strip() or type(exc).__name__)


def conversion_cause(exc: BaseException, model: Any = None) -> str:
    """Why the conversion failed, and what to do: hints named from the model's layers when it is given."""
    if isinstance(exc, ConversionFailed):
        return str(exc)
    cause = _errors(exc)
    specific = _model_hints(model, cause) if model is not None else {}
    hints = [specific.get(key, hint) for key, hint in _HINTS.items() if key in cause]
    hints += [hint for key, hint in specific.items() if key not in _HINTS]
    return cause + (f" (hint: {'; '.join(hints)})" if hints else "")


def _layers(model: Any, seen: set[int] | None = None) -> list[Any]:
    """Every layer inside the model, nested models' and wrappers' too, in the order the model lists them."""
    seen = set() if seen is None else seen
    found = []
    for layer in [*getattr(model, "layers", []), *_wrapped(model)]:
        if id(layer) not in seen:
            seen.add(id(layer))
            found += [layer, *_layers(layer, seen)]
    return found


def _steps(layer: Any) -> int | None | str:
    """The length of the sequence a recurrent layer runs over: an int, None (any length), or "?" if unknown."""
    for node in getattr(layer, "_inbound_nodes", []):
        tensors = list(node.input_tensors)
        if tensors and len(tensors[0].shape) >= 2:
            steps = tensors[0].shape[1]
            return None if steps is None else int(steps)
    return "?"


def _wrapped(layer: Any) -> list[Any]:
    return [inner for inner in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)) if inner]


def _rnn_hint(model: Any) -> str | None:
    """The recurrent layers left rolled, each with its fix; None when there are none."""
    import keras

    rolled = [layer for layer in _layers(model) if isinstance(layer, keras.layers.RNN) and not layer.unroll]
    if not rolled:
        return None
    # A Bidirectional's two layers have no inputs of their own: the wrapper's tell their length.
    wrapper = {id(inner): layer for layer in _layers(model) for inner in _wrapped(layer)}
    named = []
    for layer in rolled:
        steps = _steps(wrapper.get(id(layer), layer))
        label = f"{type(layer).__name__} '{layer.name}'"
        if steps is None:
            named.append(
                f"{label} runs rolled over sequences of any length (an Input of shape (None, ...)): give the "
                f"sequence a fixed length and build the layer with unroll=True, or serve the model on TensorFlow "
                f"(SERVING_RUNTIME=auto does so when LiteRT fails)"
            )
        else:
            over = f" over {steps} steps" if isinstance(steps, int) else ""
            named.append(f"{label} runs rolled{over}: build it with unroll=True, or serve the model on TensorFlow")
    return "a rolled recurrent layer does not lower to LiteRT ops (TensorList): " + "; ".join(named)


def _augmentation_hint(model: Any) -> str | None:
    found = [
        f"{type(layer).__name__} '{layer.name}'"
        for layer in _layers(model)
        if type(layer).__name__.startswith("Random") or type(layer).__name__ in _AUGMENTATION
    ]
    if not found:
        return None
    return (
        f"the model holds data augmentation layers ({', '.join(found)}): they do nothing at inference, but their "
        f"random ops are in the exported graph, and LiteRT has none. Leave the augmentation out of the served "
        f"model: apply it in the training input pipeline (dataset.map), or build the served model from the "
        f"trained layers without it, and export that"
    )


def _model_hints(model: Any, cause: str) -> dict[str, str]:
    """Hints read off the model, by the cause key they replace ("TensorList") or a key of their own."""
    hints: dict[str, str] = {}
    rnn = _rnn_hint(model) if "TensorList" in cause else None
    if rnn is not None:
        hints["TensorList"] = rnn
    augmentation = _augmentation_hint(model)
    if augmentation is not None:
        hints["augmentation"] = augmentation
    return hints


def convert(model: Any) -> bytes:
    """The model as a LiteRT flatbuffer, converted from its exported SavedModel (raises ConversionFailed)."""
    import tensorflow as tf

    try:
        with tempfile.TemporaryDirectory(prefix="skewless-savedmodel-") as tmp:
            saved = Path(tmp) / "saved_model"
            model.export(str(saved), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            flatbuffer: bytes = converter.convert()
    except Exception as exc:  # an op LiteRT lacks, or a model the converter cannot trace
        raise ConversionFailed(conversion_cause(exc, model)) from exc
    return flatbuffer

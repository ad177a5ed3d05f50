"""Convert a Keras model to LiteRT through the SavedModel route, and say plainly why when it cannot.

`TFLiteConverter.from_keras_model` fails on string lookups and on LSTMs; exporting a SavedModel
first (`model.export`) and converting that keeps the serving signature, with its input and
output names, and converts string lookups. A recurrent layer over a dynamic batch still does not
lower (its TensorList ops); `unroll=True` makes it convert.
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


def conversion_cause(exc: BaseException) -> str:
    """The converter's errors, root cause first, without MLIR locations, notes or repeats; and a hint."""
    errors: list[str] = []
    for line in str(exc).splitlines():
        if "error:" not in line:
            continue
        message = _strip_location(line.split("error:", 1)[1].strip())
        if message and message not in errors:
            errors.append(message)
    cause = " | ".join(errors) if errors else (str(exc).strip() or type(exc).__name__)
    hints = [hint for key, hint in _HINTS.items() if key in cause]
    return cause + (f" (hint: {'; '.join(hints)})" if hints else "")


def convert(model: Any) -> bytes:
    """The model as a LiteRT flatbuffer, converted from its exported SavedModel (raises on failure)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="skewless-savedmodel-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        flatbuffer: bytes = converter.convert()
    return flatbuffer

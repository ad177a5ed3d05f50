"""The model: loaded lazily, once per process, and run through one traced function.

Importing this module does not import TensorFlow; the first `predict` (or `load`) does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from handler.core.artifacts import Artifacts
from handler.errors import ModelLoadError

log = logging.getLogger("skewless.model")

Forward = Callable[[np.ndarray], np.ndarray]


def _registered_custom_objects() -> dict[str, Any]:
    import keras

    import handler.custom_objects  # noqa: F401  (registers the project's layers with Keras)

    return dict(keras.saving.get_custom_objects())


def load_tensorflow_forward(artifacts: Artifacts) -> Forward:
    """Load model.keras safely and return a forward function with a fixed input signature."""
    import tensorflow as tf  # the expensive import, deferred to here on purpose

    registered = _registered_custom_objects()
    missing = [name for name in artifacts.manifest.custom_objects if name not in registered]
    if missing:
        raise ModelLoadError(
            f"the model uses custom object(s) {', '.join(missing)} that are not registered in "
            f"this process: define them in handler/custom_objects.py with "
            f"@keras.saving.register_keras_serializable"
        )
    import keras

    try:
        model = keras.saving.load_model(artifacts.model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises bare TypeError/ValueError for bad files
        raise ModelLoadError(f"could not load {artifacts.model_path.name}: {exc}") from exc

    spec = artifacts.manifest.inputs
    dtype = tf.as_dtype(spec["dtype"])
    signature = [tf.TensorSpec(shape=[None, spec["shape"][1]], dtype=dtype, name=spec.get("name", "features"))]

    # One concrete function for every batch size: a fixed signature never retraces.
    @tf.function(input_signature=signature, reduce_retracing=True)
    def serve(x: Any) -> Any:
        return model(x, training=False)

    return TracedForward(serve)


class TracedForward:
    """The model behind one `tf.function`; `tracing_count` proves batch sizes do not retrace it."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x))

    def tracing_count(self) -> int:
        return int(self._fn.experimental_get_tracing_count())


class LazyModel:
    """Holds the forward function; the first caller loads it, concurrent callers wait for it."""

    def __init__(self, artifacts: Artifacts, loader: Callable[[Artifacts], Forward] = load_tensorflow_forward) -> None:
        self.artifacts = artifacts
        self._loader = loader
        self._forward: Forward | None = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def load(self) -> Forward:
        forward = self._forward
        if forward is not None:
            return forward
        with self._lock:
            if self._forward is None:
                start = time.perf_counter()
                fn = self._loader(self.artifacts)
                # Trace now, so the first request does not pay for it.
                width = self.artifacts.preprocessor.output_width
                fn(np.zeros((1, width), dtype=self.artifacts.preprocessor.dtype))
                self.load_seconds = time.perf_counter() - start
                self.loads += 1
                self._forward = fn
                log.info("model loaded in %.3f s", self.load_seconds)
            return self._forward

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.load()(x)

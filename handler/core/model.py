"""The model: loaded lazily, once per process, by the runtime that serves it.

Two runtimes run the same exported model: TensorFlow (model.keras through one traced
function) and LiteRT (model.tflite through the LiteRT interpreter, no TensorFlow at all).
Importing this module imports neither; the first `predict` (or `load`) does.
"""

from __future__ import annotations

import importlib.util
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
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise ModelLoadError(
                f"{artifacts.model_path.name} contains a Python lambda (a keras.layers.Lambda layer), which "
                f"could run arbitrary code when loaded: safe mode refuses it. Replace the lambda with a layer "
                f"registered in handler/custom_objects.py and re-export"
            ) from exc
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


class LiteRTForward:
    """model.tflite in the LiteRT interpreter; resized only when the batch size changes."""

    def __init__(self, path: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # One thread: Lambda gives a small function about one vCPU, and small models gain nothing.
        self._interpreter = Interpreter(model_path=path, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._rows = -1
        self._lock = threading.Lock()  # the interpreter holds its tensors: one call at a time

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if x.shape[0] != self._rows:
                self._interpreter.resize_tensor_input(self._input, list(x.shape), strict=True)
                self._interpreter.allocate_tensors()
                self._rows = x.shape[0]
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            out: np.ndarray = self._interpreter.get_tensor(self._output).copy()
            return out


def load_litert_forward(artifacts: Artifacts) -> Forward:
    """Load model.tflite with the LiteRT interpreter (no TensorFlow import)."""
    if not artifacts.litert_path.is_file():
        raise ModelLoadError(f"{artifacts.litert_path.name} is missing: re-export the model to get a LiteRT version")
    try:
        return LiteRTForward(str(artifacts.litert_path))
    except ImportError:
        raise ModelLoadError("the LiteRT runtime needs the ai-edge-litert package, which is not installed") from None
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"could not load {artifacts.litert_path.name}: {exc}") from exc


LOADERS: dict[str, Callable[[Artifacts], Forward]] = {
    "tensorflow": load_tensorflow_forward,
    "litert": load_litert_forward,
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_runtime(artifacts: Artifacts, requested: str) -> tuple[str, str]:
    """(runtime, why): `auto` takes LiteRT only when it passed every golden case at export."""
    litert = artifacts.manifest.runtimes.get("litert", {})
    litert_ok = bool(litert.get("golden_passed"))
    litert_why = litert.get("reason", "the export recorded no LiteRT result")
    if requested == "tensorflow":
        return "tensorflow", "SERVING_RUNTIME=tensorflow"
    if requested == "litert":
        if not litert_ok:
            raise ModelLoadError(f"SERVING_RUNTIME=litert, but LiteRT cannot serve this model: {litert_why}")
        return "litert", "SERVING_RUNTIME=litert"
    if litert_ok and _installed("ai_edge_litert"):
        return "litert", "auto: LiteRT passed every golden case at export"
    if not _installed("tensorflow"):
        if litert_ok:
            raise ModelLoadError("neither TensorFlow nor ai-edge-litert is installed: install one to serve")
        raise ModelLoadError(f"TensorFlow is not installed and LiteRT cannot serve this model: {litert_why}")
    if litert_ok:
        return "tensorflow", "auto: ai-edge-litert is not installed"
    return "tensorflow", f"auto: LiteRT cannot serve this model ({litert_why})"


class LazyModel:
    """Holds the forward function; the first caller loads it, concurrent callers wait for it."""

    def __init__(
        self,
        artifacts: Artifacts,
        loader: Callable[[Artifacts], Forward] = load_tensorflow_forward,
        verify: Callable[[Forward], None] | None = None,
    ) -> None:
        self.artifacts = artifacts
        self._loader = loader
        # Runs on the freshly loaded model before it serves; raising refuses it (the next call retries).
        self._verify = verify
        # Why the last load failed, until one succeeds: readiness reports it; a failed load is never cached.
        self.last_error: BaseException | None = None
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
                try:
                    fn = self._loader(self.artifacts)
                    # Trace now, so the first request does not pay for it.
                    width = self.artifacts.preprocessor.output_width
                    fn(np.zeros((1, width), dtype=self.artifacts.preprocessor.dtype))
                    if self._verify is not None:
                        self._verify(fn)
                except BaseException as exc:
                    self.last_error = exc
                    raise
                self.last_error = None
                self.load_seconds = time.perf_counter() - start
                self.loads += 1
                self._forward = fn
                log.info("model loaded in %.3f s", self.load_seconds)
            return self._forward

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.load()(x)

"""The model: loaded lazily, once per process, by the runtime that serves it.

Two runtimes run the same exported model over its whole signature (one array per named input
in, one per named output out): TensorFlow (model.keras behind one traced function) and LiteRT
(model.tflite, converted through the SavedModel route, run through its signature). Importing
this module imports neither; the first `load` does.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from handler.core.artifacts import MANIFEST_FILE, Artifacts
from handler.core.defaults import DEFAULT_CUSTOM_OBJECT_MODULES
from handler.core.signature import Signature, numpy_dtype
from handler.core.signature_check import keras_differences, litert_differences
from handler.errors import ArtifactError, ModelLoadError

log = logging.getLogger("skewless.model")

Arrays = dict[str, np.ndarray]
Forward = Callable[[Mapping[str, np.ndarray]], Arrays]


def import_custom_object_modules(modules: tuple[str, ...], artifacts: Artifacts | None = None) -> dict[str, Any]:
    """Import the modules that register custom Keras objects; return every registered object.

    With `artifacts`, the modules its manifest records come first: those it carries from its code/ folder,
    then those of the installed environment by name; `modules` (CUSTOM_OBJECT_MODULES) adds the others.
    """
    import keras

    from handler.core.artifact_code import CodeRecord, import_artifact_code  # only TensorFlow loads code

    recorded: tuple[str, ...] = ()
    if artifacts is not None:
        record = CodeRecord.from_manifest(artifacts.manifest.raw, artifacts.manifest.files)
        import_artifact_code(artifacts.model_dir, record)
        recorded = record.names
    for module in modules:
        if module in recorded:
            continue  # the artifact's own copy is the one to use, not one found on sys.path
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ModelLoadError(
                f"CUSTOM_OBJECT_MODULES names {module}, which cannot be imported ({exc}): install it in the "
                f"image (or on PYTHONPATH) beside the handler, or re-export with custom_object_modules naming it, "
                f"so that the artifact carries its source"
            ) from None
    return dict(keras.saving.get_custom_objects())


def refuse_mismatch(problems: list[str], model_file: str) -> None:
    """A signature the loaded model does not take is refused as the artifact's fault: one line, every difference."""
    if problems:
        raise ArtifactError(
            f"{MANIFEST_FILE}'s signature does not match {model_file}: {'; '.join(problems)}; re-export the model "
            f"instead of editing the manifest"
        )


def structured_inputs(signature: Signature, inputs: Mapping[str, Any]) -> Any:
    """Named inputs -> the structure the model was built with (one tensor, a list, or a dict)."""
    if signature.input_structure == "single":
        return inputs[signature.inputs[0].name]
    if signature.input_structure == "list":
        return [inputs[s.name] for s in signature.inputs]
    return {s.name: inputs[s.name] for s in signature.inputs}


def named_outputs(signature: Signature, outputs: Any) -> dict[str, Any]:
    """The model's outputs (one tensor, a list, or a dict) -> by output name."""
    names = signature.output_names
    if signature.output_structure == "single":
        return {names[0]: outputs}
    if signature.output_structure == "list":
        return dict(zip(names, outputs, strict=True))
    return {name: outputs[name] for name in names}


def load_tensorflow_forward(artifacts: Artifacts, modules: tuple[str, ...] = DEFAULT_CUSTOM_OBJECT_MODULES) -> Forward:
    """Load model.keras safely and return a forward function with a fixed signature over every input."""
    import tensorflow as tf  # the expensive import, deferred to here on purpose

    registered = import_custom_object_modules(modules, artifacts)
    missing = [name for name in artifacts.manifest.custom_objects if name not in registered]
    if missing:
        where = artifacts.manifest.raw.get("custom_object_modules") or []
        hint = f" (the export found them in {', '.join(where)})" if where else ""
        raise ModelLoadError(
            f"the model uses custom object(s) {', '.join(missing)} that are not registered in this process{hint}: "
            f"set CUSTOM_OBJECT_MODULES to the module(s) that define them with "
            f"@keras.saving.register_keras_serializable (now: {','.join(modules)})"
        )
    import keras

    try:
        model = keras.saving.load_model(artifacts.model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises bare TypeError/ValueError for bad files
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise ModelLoadError(
                f"{artifacts.model_path.name} contains a `keras.layers.Lambda` layer, whose Python code could run "
                f"arbitrary code when loaded: safe mode refuses it. Replace it with a layer registered in a "
                f"module of CUSTOM_OBJECT_MODULES and re-export"
            ) from exc
        raise ModelLoadError(f"could not load {artifacts.model_path.name}: {exc}") from exc

    signature = artifacts.signature
    refuse_mismatch(keras_differences(model, signature), artifacts.model_path.name)
    specs = {
        s.name: tf.TensorSpec([None, *s.shape], tf.string if s.dtype == "string" else tf.as_dtype(s.dtype), name=s.name)
        for s in signature.inputs
    }

    # One concrete function over the whole signature: no batch size retraces it.
    @tf.function(input_signature=[specs])
    def serve(inputs: dict[str, Any]) -> dict[str, Any]:
        return named_outputs(signature, model(structured_inputs(signature, inputs), training=False))

    return TracedForward(serve)


class TracedForward:
    """The model behind one `tf.function`; `tracing_count` proves batch sizes do not retrace it."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        # Its one concrete function, called directly: the tf.function's argument binding and cache lookup cost
        # ~130 us a call here (one churn example: ~400 -> ~270 us), and the input signature admits no other.
        self._concrete = fn.get_concrete_function()

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Arrays:
        return {name: t.numpy() for name, t in self._concrete(dict(inputs)).items()}

    def tracing_count(self) -> int:
        return int(self._fn.experimental_get_tracing_count())


class LiteRTForward:
    """model.tflite through its serving signature; tensors are resized only when a shape changes."""

    def __init__(self, path: str, signature: Signature) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # One thread: Lambda gives a small function about one vCPU, and small models gain nothing.
        self._interpreter = Interpreter(model_path=path, num_threads=1)
        runner = self._interpreter.get_signature_runner()
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        # One input (or output) is matched whatever its name: a Sequential model's input is renamed on export.
        if len(signature.inputs) == 1 and len(inputs) == 1:
            inputs = {signature.inputs[0].name: next(iter(inputs.values()))}
        if len(signature.outputs) == 1 and len(outputs) == 1:
            outputs = {signature.outputs[0].name: next(iter(outputs.values()))}
        refuse_mismatch(litert_differences(inputs, outputs, signature), os.path.basename(path))
        self._inputs = {s.name: (inputs[s.name]["index"], numpy_dtype(s.dtype)) for s in signature.inputs}
        self._outputs = {s.name: outputs[s.name]["index"] for s in signature.outputs}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()  # the interpreter holds its tensors: one call at a time

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Arrays:
        interpreter = self._interpreter
        with self._lock:
            shapes = {name: inputs[name].shape for name in self._inputs}
            if shapes != self._shapes:
                for name, (index, _) in self._inputs.items():
                    interpreter.resize_tensor_input(index, list(shapes[name]), strict=False)
                interpreter.allocate_tensors()
                self._shapes = shapes
            for name, (index, _) in self._inputs.items():
                interpreter.set_tensor(index, inputs[name])
            interpreter.invoke()
            return {name: interpreter.get_tensor(index) for name, index in self._outputs.items()}


def load_litert_forward(artifacts: Artifacts, modules: tuple[str, ...] = ()) -> Forward:
    """Load model.tflite with the LiteRT interpreter (no TensorFlow import, no custom objects needed)."""
    if not artifacts.has_litert:
        raise ModelLoadError(f"{artifacts.litert_path.name} is missing: re-export the model to get a LiteRT version")
    try:
        return LiteRTForward(str(artifacts.litert_path), artifacts.signature)
    except ImportError:
        raise ModelLoadError("the LiteRT runtime needs the ai-edge-litert package, which is not installed") from None
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"could not load {artifacts.litert_path.name}: {exc}") from exc


LOADERS: dict[str, Callable[..., Forward]] = {
    "tensorflow": load_tensorflow_forward,
    "litert": load_litert_forward,
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_runtime(artifacts: Artifacts, requested: str) -> tuple[str, str]:
    """(runtime, why): `auto` takes LiteRT only when it passed every golden case at export."""
    litert = artifacts.manifest.runtimes.get("litert", {})
    litert_ok = bool(litert.get("golden_passed")) and artifacts.has_litert
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


def warmup_inputs(signature: Signature) -> Arrays:
    """One example of zeros (the lowest id, an empty string) per input: enough to trace and allocate.

    Only for artifacts without a golden case: a lookup without an OOV index refuses made-up values inside the graph.
    """
    out: Arrays = {}
    for s in signature.inputs:
        shape = (1, *(d or 1 for d in s.shape))
        if s.kind == "string":
            out[s.name] = np.full(shape, "", dtype=object)
        else:
            low = s.index_range[0] if s.index_range is not None else 0
            out[s.name] = np.full(shape, low, dtype=numpy_dtype(s.dtype))
    return out


class LazyModel:
    """Holds the forward function; the first caller loads it, concurrent callers wait for it."""

    def __init__(
        self,
        artifacts: Artifacts,
        loader: Callable[[Artifacts], Forward] = load_tensorflow_forward,
        verify: Callable[[Forward], None] | None = None,
        warmup: Callable[[], Arrays] | None = None,
    ) -> None:
        self.artifacts = artifacts
        self._loader = loader
        # The example the first load runs (to trace and allocate); made-up zeros unless the caller has a real one.
        self._warmup = warmup or (lambda: warmup_inputs(artifacts.signature))
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
                    fn(self._warmup())  # trace now, not on the first request
                    if self._verify is not None:
                        self._verify(fn)
                except BaseException as exc:
                    self.last_error = exc
                    raise
                self.last_error = None
                self.load_seconds = time.perf_counter() - start
                self.loads += 1
                self._forward = fn
                _freeze_long_lived()
                log.info("model loaded in %.3f s", self.load_seconds)
            return self._forward


def _freeze_long_lived() -> None:
    """Leave what the process holds now (imports, the model, the runtime) out of every later garbage collection.

    A batch's parsed JSON is tens of thousands of lists: allocating them triggers the collector, and each
    full collection used to walk every object of the process, a few hundred thousand with TensorFlow loaded
    (measured here: 32 digits images, TensorFlow, p90 ~300 ms with a full collection every other request).
    Frozen objects are still freed by reference counting; the young generations are collected first, so
    only cyclic garbage older than that is kept for good. gc.freeze() itself only relinks lists.
    """
    gc.collect(1)
    gc.freeze()

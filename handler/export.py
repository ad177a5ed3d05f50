"""The export API a training script calls: write everything serving needs, or refuse.

    from handler.export import export_model
    export_model(model, preprocessor, sample_requests, "model_artifacts", name="churn", version="1")

It writes `model.keras`, `model.tflite` (when LiteRT reproduces the golden outputs),
`preprocessing.json`, `golden.json` (the sample requests with the
outputs this training process computes for them) and `manifest.json` (hashes, versions,
custom objects, signature). Before it commits them it reloads the saved model the way the
server will (`safe_mode=True`, `compile=False`) and refuses to export if the reloaded model
answers differently: that catches a custom layer whose `get_config()` misses an argument.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.artifacts import (
    GOLDEN_FILE,
    LITERT_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    MODEL_FILE,
    PREPROCESSING_FILE,
    library_versions,
    sha256_of,
)
from handler.core.coerce import CoercePolicy, Coercer
from handler.core.service import format_v1
from handler.errors import ExportError, InvalidInput
from handler.preprocessing import Preprocessor

CUSTOM_OBJECTS_MODULE = "handler.custom_objects"


@dataclass(frozen=True)
class Tolerance:
    """How far a served output may be from the golden one: |a - b| <= atol + rtol * |b|."""

    atol: float = 1e-5
    rtol: float = 1e-5


def _custom_layer_classes(model: Any) -> list[type]:
    classes: dict[str, type] = {}
    for layer in [model, *model._flatten_layers(include_self=False)]:
        cls = type(layer)
        if not cls.__module__.startswith("keras"):
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(classes.values())


def registered_custom_objects(model: Any, modules: tuple[str, ...] = (CUSTOM_OBJECTS_MODULE,)) -> list[str]:
    """The registered names of the model's custom layers; refuse ones serving could not load.

    `modules` are the modules the serving process imports to register custom objects.
    """
    import keras

    names = []
    for cls in _custom_layer_classes(model):
        name = keras.saving.get_registered_name(cls)
        if keras.saving.get_registered_object(name) is not cls:
            raise ExportError(
                f"custom layer {cls.__qualname__} is not registered: decorate it with "
                f"@keras.saving.register_keras_serializable(package=...) in "
                f"{CUSTOM_OBJECTS_MODULE}, or the server cannot load the model"
            )
        if cls.__module__ not in modules:
            raise ExportError(
                f"custom layer {cls.__qualname__} is defined in {cls.__module__}, which the server "
                f"does not import: move it to {CUSTOM_OBJECTS_MODULE}"
            )
        names.append(name)
    return sorted(names)


def _forward(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def _outputs_spec(model: Any, outputs: np.ndarray) -> dict[str, Any]:
    out_name = model.output_names[0] if getattr(model, "output_names", None) else "output"
    return {"name": out_name, "dtype": str(outputs.dtype), "shape": [None, *outputs.shape[1:]]}


def _check_round_trip(saved: Path, inputs: list[np.ndarray], expected: list[np.ndarray], tol: Tolerance) -> None:
    """Reload as the server will and compare: a config that lost an argument shows up here."""
    import keras

    import handler.custom_objects  # noqa: F401  (the server registers exactly these)

    try:
        reloaded = keras.saving.load_model(saved, compile=False, safe_mode=True)
    except Exception as exc:
        raise ExportError(
            f"the saved model does not load as the server loads it (safe_mode=True): {exc}. "
            f"Register custom layers in {CUSTOM_OBJECTS_MODULE} and give them a complete get_config()"
        ) from exc
    worst = 0.0
    for x, y in zip(inputs, expected, strict=True):
        got = _forward(reloaded, x)
        worst = max(worst, float(np.max(np.abs(got - y) - tol.rtol * np.abs(y))))
    if worst > tol.atol:
        raise ExportError(
            f"the reloaded model answers differently from the trained one (max difference "
            f"{worst:.3g} > atol {tol.atol}): a custom layer's get_config() probably misses a "
            f"constructor argument, so it reloads with a default"
        )


def _litert_result(
    model: Any, path: Path, inputs: list[np.ndarray], expected: list[np.ndarray], tol: Tolerance
) -> dict[str, Any]:
    """Convert to a LiteRT flatbuffer and replay the golden inputs through it; never raises."""
    import tensorflow as tf

    try:
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as exc:  # an op LiteRT lacks, or a model the converter cannot trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"golden_passed": False, "reason": f"conversion failed: {first[:300]}"}
    path.write_bytes(flatbuffer)
    try:
        from handler.core.model import LiteRTForward

        forward = LiteRTForward(str(path))
        worst = 0.0
        for x, y in zip(inputs, expected, strict=True):
            worst = max(worst, float(np.max(np.abs(forward(x) - y) - tol.rtol * np.abs(y))))
    except Exception as exc:
        path.unlink()
        return {"golden_passed": False, "reason": f"the converted model does not run: {exc}"}
    if worst > tol.atol:
        return {
            "golden_passed": False,
            "max_excess": worst,
            "reason": f"outputs differ by {worst:.3g} > atol {tol.atol}",
        }
    return {"golden_passed": True, "max_excess": max(worst, 0.0)}


def export_model(
    model: Any,
    preprocessor: Preprocessor,
    sample_requests: Mapping[str, Any] | Iterable[tuple[str, Any]],
    out_dir: str | Path,
    *,
    name: str,
    version: str,
    tolerance: Tolerance | None = None,
    description: str = "",
    custom_object_modules: tuple[str, ...] = (CUSTOM_OBJECTS_MODULE,),
    litert_runtime: bool = True,
) -> dict[str, Any]:
    """Write the four artifacts into `out_dir` (replaced whole, only once all are right).

    `sample_requests` are v1 bodies exactly as clients send them, keyed by a case name;
    their outputs are computed here, in the training process, and become the golden cases.
    Returns the manifest.
    """
    tol = tolerance or Tolerance()
    out = Path(out_dir)
    cases_in = list(sample_requests.items()) if isinstance(sample_requests, Mapping) else list(sample_requests)
    if not cases_in:
        raise ExportError("give at least one sample request: they become the golden cases")
    custom = registered_custom_objects(model, custom_object_modules)

    staging = out.parent / f".{out.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.save(staging / MODEL_FILE)
        preprocessor.save(staging / PREPROCESSING_FILE)

        # Golden outputs: coerced by the server's own code, transformed, run on the model in memory.
        coercer = Coercer(preprocessor, CoercePolicy(max_batch_size=1_000_000))
        cases, inputs, outputs = [], [], []
        for case_name, body in cases_in:
            try:
                req = coercer.coerce(body)
            except InvalidInput as exc:
                raise ExportError(f"sample request '{case_name}' is not valid: {exc.message}") from None
            x = preprocessor.transform(req.columns)
            y = _forward(model, x)
            inputs.append(x)
            outputs.append(y)
            cases.append({"name": case_name, "request": body, "response": format_v1(y, req)})
        _check_round_trip(staging / MODEL_FILE, inputs, outputs, tol)
        litert = _litert_result(model, staging / LITERT_FILE, inputs, outputs, tol) if litert_runtime else None

        golden = {"model": name, "version": version, "tolerance": asdict(tol), "cases": cases}
        (staging / GOLDEN_FILE).write_text(json.dumps(golden, indent=1) + "\n")

        manifest = {
            "format_version": MANIFEST_FORMAT,
            "model": {"name": name, "version": version, "description": description},
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                f: sha256_of(staging / f)
                for f in (MODEL_FILE, PREPROCESSING_FILE, GOLDEN_FILE, LITERT_FILE)
                if (staging / f).is_file()
            },
            # Which runtimes reproduce every golden case; `SERVING_RUNTIME=auto` reads this.
            "runtimes": {
                "tensorflow": {"golden_passed": True},
                "litert": litert or {"golden_passed": False, "reason": "not converted (litert_runtime=False)"},
            },
            "versions": library_versions(),
            "custom_objects": custom,
            "signature": {
                "inputs": {
                    "name": "features",
                    "dtype": preprocessor.dtype,
                    "shape": [None, preprocessor.output_width],
                    "columns": preprocessor.output_names(),
                },
                "outputs": _outputs_spec(model, outputs[0]),
            },
            "raw_features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    **({"vocabulary": list(f.vocabulary), "oov": f.oov} if f.kind == "categorical" else {}),
                }
                for f in preprocessor.features
            ],
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    # Swap the whole directory, so a reader never sees half of one export and half of another.
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return manifest

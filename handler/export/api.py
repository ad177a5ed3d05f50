"""The export API a training script calls: write everything serving needs, or refuse.

    from handler.export import export_model
    export_model(model, None, {"one_image": {"instances": [img.tolist()]}}, "model_artifacts/digits",
                 name="digits", version="1")

It writes `model.keras`, `preprocessing.json` (when a numpy preprocessor is given), `golden.json`
(the sample requests and what training answered for them), `model.tflite` (when LiteRT
reproduces every golden case) and `manifest.json` (hashes, versions, custom objects, signature).
Before it commits them it serves every sample request through the real serving path, from the
files it wrote, on each runtime, and refuses if TensorFlow answers otherwise than training.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.artifact_code import CODE_KEY
from handler.core.artifacts import (
    BASELINE_FILE,
    DIGEST_KEY,
    GOLDEN_FILE,
    LITERT_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    MODEL_FILE,
    PREPROCESSING_FILE,
    QUALITY_FILE,
    Artifacts,
    library_versions,
    manifest_digest,
    sha256_of,
)
from handler.core.coerce import CoercePolicy
from handler.core.golden import GOLDEN_FORMAT, CaseResult, replay
from handler.core.model import named_outputs, structured_inputs
from handler.core.preprocessing import Preprocessor
from handler.core.service import Service, prepare
from handler.core.signature import Signature
from handler.errors import ExportError, SkewlessError
from handler.export import litert
from handler.export.baseline import write_baseline
from handler.export.code import bundle, code_hashes, isolated
from handler.export.keras_model import custom_objects, signature_of
from handler.export.quality import record_quality
from handler.export.reference import by_output_name, is_batched, jsonable, predicted, served_otherwise
from handler.monitoring.calibration import DEFAULT_FALSE_ALARM_RATE
from handler.monitoring.window import DEFAULT_WINDOW


@dataclass(frozen=True)
class Tolerance:
    """How far a served output may be from the golden one: |a - b| <= atol + rtol * |b|."""

    atol: float = 1e-5
    rtol: float = 1e-5


def export_model(
    model: Any,
    preprocessor: Preprocessor | None,
    sample_requests: Mapping[str, Any] | Iterable[tuple[str, Any]],
    out_dir: str | Path,
    *,
    name: str,
    version: str,
    expected: Mapping[str, Any] | None = None,
    tolerance: Tolerance | None = None,
    description: str = "",
    custom_object_modules: tuple[str, ...] | None = None,
    litert_runtime: bool = True,
    training_data: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    validation_data: tuple[Mapping[str, Any], Any] | None = None,
    problem: str | None = None,
    quality_output: str | None = None,
    drift_window: int = DEFAULT_WINDOW,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    holdout_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the artifacts into `out_dir` (replaced whole, only once all are right); return the manifest.

    `sample_requests`: v1 bodies exactly as clients send them, keyed by a case name (numpy values
    are fine). `expected`: per case, what the training pipeline computed for it (`model.predict`
    on the inputs as training built them: an array, or a dict/list of arrays by output). It is
    required with a `preprocessor`; without one, the reference is `model.predict` on the request
    read into Keras' own input structure. `custom_object_modules`: the modules the server imports
    (CUSTOM_OBJECT_MODULES); None accepts the modules the custom layers live in. `training_data`: the
    raw training features exactly as a client sends them, {feature: array with the batch axis first};
    when given, `baseline.json` describes them and the model's answers to them (the drift watch's reference).
    `class_names`: for a classifier, the name of each score of its one output (two for a single sigmoid
    score, [negative, positive]); TF Serving's `:classify` then answers with them. `validation_data`: held-out
    rows and their labels, `(inputs as training_data, labels)`: `quality_baseline.json` holds the model's
    metrics on them (the reference for labels of served rows, docs/quality.md). `problem` ("binary",
    "multiclass", "regression") and `quality_output` (the output labels judge, for a model with several): what
    the labels mean, recorded in the manifest; by default read from class_names, the output and the labels.
    `drift_window` and `false_alarm_rate`: each feature's drift threshold in baseline.json is the score a window
    of that many rows passes by chance at that rate (for the features together; docs/drift.md), the windows
    drawn from `holdout_data` (raw rows the model was not trained on, as training_data), else from
    validation_data's rows, else from training_data itself.
    """
    tol = tolerance or Tolerance()
    out = Path(out_dir)
    cases_in = [
        (str(k), jsonable(v))
        for k, v in (sample_requests.items() if isinstance(sample_requests, Mapping) else sample_requests)
    ]
    if not cases_in:
        raise ExportError("give at least one sample request: they become the golden cases")
    if preprocessor is not None and expected is None:
        raise ExportError(
            "a numpy preprocessor needs `expected`: for each sample request, what your training pipeline "
            "computed (model.predict on the inputs as training built them). Golden outputs computed through "
            "the server's own preprocessing could not show that it differs from training"
        )
    if expected is not None:
        missing = [case for case, _ in cases_in if case not in expected]
        if missing:
            raise ExportError(f"`expected` has no answer for sample request(s) {', '.join(missing)}")
    custom, modules = custom_objects(model, custom_object_modules)
    serve_modules = tuple(custom_object_modules) if custom_object_modules is not None else tuple(modules)

    staging = out.parent / f".{out.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        code = bundle(serve_modules, staging)  # the modules' source into code/: the artifact carries its code
        model.save(staging / MODEL_FILE)
        signature = signature_of(_reload(staging / MODEL_FILE), preprocessor)
        if preprocessor is not None:
            preprocessor.save(staging / PREPROCESSING_FILE)
        cases = [_golden_case(model, case, body, signature, expected) for case, body in cases_in]
        golden = {"format": GOLDEN_FORMAT, "model": name, "version": version, "tolerance": asdict(tol), "cases": cases}
        (staging / GOLDEN_FILE).write_text(json.dumps(golden, indent=1) + "\n")
        drift = None
        if training_data is not None:
            held_out, what = (holdout_data, "holdout_data") if holdout_data is not None else (None, "")
            if held_out is None and validation_data is not None:
                held_out, what = _validation_rows(validation_data), "validation_data's rows"
            drift = write_baseline(
                staging, model, signature, preprocessor, training_data, drift_window, false_alarm_rate, held_out, what
            )
        manifest = _manifest(staging, name, version, description, signature, custom, modules)
        manifest[CODE_KEY] = code.to_dict()
        if class_names is not None:
            manifest["class_names"] = _class_names(class_names, signature)
        solved = record_quality(
            staging, model, signature, preprocessor, drift, validation_data, problem, quality_output, class_names
        )
        if solved is not None:
            manifest["problem"] = solved
        manifest["runtimes"] = {"tensorflow": {"golden_passed": True}}
        _write_manifest(staging, manifest)

        results = _replay(staging, "tensorflow", serve_modules)
        if not all(r.ok for r in results):
            with isolated(staging):
                why = _why_tensorflow_differs(model, staging, results, serve_modules)
            raise ExportError(why)
        manifest["runtimes"]["litert"] = (
            _litert(model, staging, manifest, serve_modules)
            if litert_runtime
            else {"golden_passed": False, "reason": "not converted (litert_runtime=False)"}
        )
        _write_manifest(staging, manifest)
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


def _class_names(names: Sequence[str], signature: Signature) -> list[str]:
    """The class names, checked against the model's one output: one per score (two for one sigmoid score)."""
    listed = list(names) if not isinstance(names, str) else []
    if not listed or not all(isinstance(n, str) and n for n in listed) or len(set(listed)) != len(listed):
        raise ExportError("class_names must be a list of distinct, non-empty strings, one per class")
    if len(signature.outputs) != 1:
        found = ", ".join(o.name for o in signature.outputs)
        raise ExportError(f"class_names needs a model with one output (the class scores); this one has {found}")
    (output,) = signature.outputs
    scores = output.size
    if scores != len(listed) and not (scores == 1 and len(listed) == 2):
        raise ExportError(
            f"class_names has {len(listed)} names but output '{output.name}' ({output.describe()}) gives "
            f"{scores} score(s) per example: give one name per score (two for a single sigmoid score)"
        )
    return listed


def _reload(path: Path) -> Any:
    """Load the saved model the way the server does; a refusal here is one the server would make."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise ExportError(
            f"the saved model does not load as the server loads it (safe_mode=True): {exc}. Register custom "
            f"layers with @keras.saving.register_keras_serializable and give them a complete get_config()"
        ) from exc


def _golden_case(
    model: Any, case: str, body: Any, signature: Signature, expected: Mapping[str, Any] | None
) -> dict[str, Any]:
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ExportError(f"sample request '{case}' must be a v1 body: an object with 'instances' or 'inputs'")
    if expected is not None:
        outputs = by_output_name(expected[case], signature, f"expected['{case}']")
        batched = is_batched(body, signature)
    else:
        outputs, batched = predicted(model, body, signature, case)
    return {
        "name": case,
        "request": body,
        "batched": batched,
        "expected": {n: jsonable(np.asarray(a)) for n, a in outputs.items()},
    }


def _manifest(
    staging: Path,
    name: str,
    version: str,
    description: str,
    signature: Signature,
    custom: list[str],
    modules: list[str],
) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_FORMAT,
        "model": {"name": name, "version": version, "description": description},
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {},
        "versions": library_versions(),
        "custom_objects": custom,
        "custom_object_modules": modules,
        "signature": signature.to_dict(),
    }


def _write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    """Hash every artifact present, then write the manifest (itself unhashed: it holds the hashes)."""
    names = (MODEL_FILE, PREPROCESSING_FILE, GOLDEN_FILE, LITERT_FILE, BASELINE_FILE, QUALITY_FILE)
    manifest["files"] = {f: sha256_of(staging / f) for f in names if (staging / f).is_file()}
    manifest["files"].update(code_hashes(staging))
    manifest[DIGEST_KEY] = manifest_digest(manifest)  # last: it covers every other key
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _service(staging: Path, runtime: str, modules: tuple[str, ...]) -> Service:
    return Service.create(Artifacts.open(staging), CoercePolicy(max_batch_size=1_000_000), runtime, modules)


def _replay(staging: Path, runtime: str, modules: tuple[str, ...]) -> list[CaseResult]:
    """Every golden case through the real serving path, from the files written, on one runtime."""
    with isolated(staging):  # the custom objects from the staged code/, as the server imports them
        service = _service(staging, runtime, modules)
        service.model.load()
        return replay(service.artifacts.golden(), service.predict_v1, service.output_names)


def _why_tensorflow_differs(model: Any, staging: Path, results: list[CaseResult], modules: tuple[str, ...]) -> str:
    """Tell a model that reloads differently (a get_config() that forgets an argument) from a serving path that does."""
    service = _service(staging, "tensorflow", modules)
    reloaded = service.forward()
    signature = service.artifacts.signature
    worst = 0.0
    for case in service.artifacts.golden()["cases"]:
        try:
            inputs, _ = prepare(service.artifacts, service.coercer.coerce(case["request"]).columns)
        except SkewlessError:
            continue
        trained = named_outputs(signature, model(structured_inputs(signature, inputs), training=False))
        served = reloaded(inputs)
        for n in signature.output_names:
            worst = max(worst, float(np.max(np.abs(np.asarray(trained[n], dtype=np.float64) - served[n]))))
    if worst > 1e-6:
        return (
            f"the reloaded model answers differently from the trained one (by up to {worst:.3g}): a custom layer's "
            f"get_config() probably misses a constructor argument, so it reloads with a default"
        )
    return served_otherwise(results, service.artifacts.preprocessor)


def _litert(model: Any, staging: Path, manifest: dict[str, Any], modules: tuple[str, ...]) -> dict[str, Any]:
    """Convert, then replay every golden case on LiteRT; keep model.tflite only if all match. Never raises."""
    try:
        (staging / LITERT_FILE).write_bytes(litert.convert(model))
    except Exception as exc:  # an op LiteRT lacks, or a model the converter cannot trace
        return {"golden_passed": False, "reason": f"conversion failed: {litert.conversion_cause(exc)}"}
    _write_manifest(staging, manifest)
    try:
        results = _replay(staging, "litert", modules)
    except SkewlessError as exc:
        result: dict[str, Any] = {"golden_passed": False, "reason": f"the converted model does not run: {exc.message}"}
    else:
        bad = [r for r in results if not r.ok]
        if not bad:
            return {"golden_passed": True, "max_diff": max(r.max_diff for r in results)}
        result = {
            "golden_passed": False,
            "reason": f"{len(bad)} golden case(s) differ, e.g. {bad[0].name}: {bad[0].detail}",
        }
    (staging / LITERT_FILE).unlink()
    return result


def _validation_rows(validation_data: Any) -> Any:
    """validation_data's rows (its labels are record_quality's to check): None when it is no (rows, labels) pair."""
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return validation_data[0]
    return None

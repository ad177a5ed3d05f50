"""`baseline.json` at export: the training statistics that drift is measured against.

`export_model(..., training_data=columns)` gives the raw features exactly as a client sends them,
one array per feature with the batch axis first. The baseline describes those columns and what
the trained model answers for them (run here, on the training side: the serving path is not
what a baseline of training predictions should come from).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.artifacts import BASELINE_FILE
from handler.core.model import structured_inputs
from handler.core.preprocessing import Preprocessor
from handler.core.signature import Signature, TensorSpec, numpy_dtype
from handler.errors import ExportError
from handler.export.reference import by_output_name
from handler.monitoring.baseline import Baseline
from handler.monitoring.calibration import DEFAULT_FALSE_ALARM_RATE, calibrate
from handler.monitoring.window import DEFAULT_WINDOW

PREDICT_BATCH = 1024


def training_columns(
    training_data: Mapping[str, Any], signature: Signature, what: str = "training_data"
) -> dict[str, np.ndarray]:
    """The training columns (or, `what` says, another set of raw rows) as arrays of the features' dtypes and shapes,
    or ExportError saying what is wrong."""
    if not isinstance(training_data, Mapping):
        raise ExportError(
            f"{what} must be a dict of feature -> array (batch axis first), got {type(training_data).__name__}"
        )
    names = signature.feature_names
    unknown = sorted(str(k) for k in training_data if k not in names)
    missing = [n for n in names if n not in training_data]
    if unknown or missing:
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise ExportError(
            f"{what} must have exactly the features a client sends ({', '.join(names)}): {'; '.join(problems)}"
        )
    columns = {f.name: _column(f, training_data[f.name], what) for f in signature.features}
    lengths = {n: len(c) for n, c in columns.items()}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise ExportError(f"{what}'s features need the same, non-zero number of rows; got {lengths}")
    return columns


def _column(spec: TensorSpec, values: Any, what: str = "training_data") -> np.ndarray:
    arr = np.asarray(values, dtype=object if spec.kind == "string" else None)
    if spec.shape == (1,) and arr.ndim == 1:  # one value per row for an Input(shape=(1,)), as a client may send it
        arr = arr.reshape(-1, 1)
    shape = arr.shape[1:]
    if arr.ndim != spec.rank + 1 or any(w is not None and w != g for w, g in zip(spec.shape, shape, strict=True)):
        dims = "".join(f", {'any' if d is None else d}" for d in spec.shape)
        raise ExportError(
            f"{what}['{spec.name}'] has shape {list(arr.shape)}; a client sends {spec.describe()} per "
            f"example, so it needs [rows{dims}]"
        )
    if spec.kind == "string":
        if not all(v is None or isinstance(v, (str, bytes)) for v in arr.ravel().tolist()):
            raise ExportError(f"{what}['{spec.name}'] must hold strings, as clients send them")
        return arr
    if arr.dtype.kind not in "biuf":
        raise ExportError(f"{what}['{spec.name}'] must hold numbers ({spec.dtype}), got {arr.dtype}")
    return arr.astype(numpy_dtype(spec.dtype), copy=False)


def training_predictions(
    model: Any,
    signature: Signature,
    preprocessor: Preprocessor | None,
    columns: Mapping[str, np.ndarray],
    what: str = "training_data",
) -> dict[str, np.ndarray]:
    """What the trained model answers for the training data, by output name (un-scaled, as served)."""
    if preprocessor is not None:
        x: Any = preprocessor.transform(columns)
    else:
        x = structured_inputs(signature, dict(columns))
        if any(s.kind == "string" for s in signature.inputs):
            import tensorflow as tf  # model.predict refuses numpy string arrays of rank 2; tensors it takes

            x = tf.nest.map_structure(tf.constant, x)
    try:
        answer = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
    except Exception as exc:  # Keras' own input errors
        raise ExportError(f"the model does not run on {what}: {str(exc).strip()[:300]}") from None
    predictions = by_output_name(answer, signature, f"model.predict on {what}")
    if preprocessor is not None and preprocessor.target is not None:  # in training's units, as the server answers
        predictions = preprocessor.target.apply(predictions, signature.output_names)
    return predictions


def write_baseline(
    staging: Path,
    model: Any,
    signature: Signature,
    preprocessor: Preprocessor | None,
    training_data: Mapping[str, Any],
    drift_window: int = DEFAULT_WINDOW,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    held_out: Mapping[str, Any] | None = None,
    held_out_what: str = "holdout_data",
) -> Baseline:
    """Describe the training columns and the model's answers to them in `staging/baseline.json`, with each one's
    drift threshold for windows of `drift_window` rows at `false_alarm_rate` (`calibration`), drawn from the
    `held_out` rows (raw features, as training_data) when given, else from the training rows."""
    if not 0 < false_alarm_rate < 1:
        raise ExportError(f"false_alarm_rate must lie strictly between 0 and 1, got {false_alarm_rate}")
    if drift_window < 1:
        raise ExportError(f"drift_window must be at least 1 row, got {drift_window}")
    columns = training_columns(training_data, signature)
    predictions = training_predictions(model, signature, preprocessor, columns)
    drawn, answers = columns, predictions
    if held_out is not None:
        drawn = training_columns(held_out, signature, held_out_what)
        answers = training_predictions(model, signature, preprocessor, drawn, held_out_what)
    try:
        baseline = Baseline.fit(signature.features, signature.outputs, columns, predictions)
        baseline = calibrate(baseline, drawn, answers, drift_window, false_alarm_rate, held_out is not None)
    except ValueError as exc:
        raise ExportError(f"training_data cannot be described: {exc}") from None
    baseline.save(staging / BASELINE_FILE)
    return baseline

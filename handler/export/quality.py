"""`quality_baseline.json` at export: the model's metrics on held-out rows, through the training pipeline.

`export_model(..., validation_data=(inputs, labels))`: the raw features of rows training never fitted on, exactly
as a client sends them (as `training_data`), and their true labels (0/1 or true/false, class indices or names,
values). The trained model answers them as training does (the numpy preprocessing, `model.predict`, a scaled
target un-scaled: `baseline.training_predictions`), not through the serving path. The problem type's metrics on
those answers, their bootstrap intervals and every slice's metrics (by the drift baseline's bins, when
`training_data` gave one) go to `quality_baseline.json`; the problem and the output the labels judge go to the
manifest (`problem`), where the quality report and the labels trigger read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.artifacts import QUALITY_FILE
from handler.core.preprocessing import Preprocessor
from handler.core.signature import Signature
from handler.errors import ExportError
from handler.export.baseline import training_columns, training_predictions
from handler.monitoring.baseline import Baseline
from handler.monitoring.quality import baseline as quality_baseline
from handler.monitoring.quality.metrics import PROBLEMS
from handler.monitoring.quality.problem import Problem, ProblemError, resolve
from handler.monitoring.quality.slices import Slicer, by_slice

WHAT = "validation_data"


def record_quality(
    staging: Path,
    model: Any,
    signature: Signature,
    preprocessor: Preprocessor | None,
    drift: Baseline | None,
    validation_data: Any,
    problem: str | None,
    output: str | None,
    class_names: Sequence[str] | None,
) -> dict[str, str] | None:
    """The manifest's `problem` entry, and `quality_baseline.json` when there are validation rows; None when the
    export was told neither (without rows, the problem is recorded only when `problem` names it)."""
    if validation_data is None and problem is None:
        return None
    settled = settle_problem(signature, problem, output, class_names) if problem is not None else None
    if validation_data is not None:
        settled = write_quality_baseline(
            staging, model, signature, preprocessor, validation_data, settled, output, class_names, drift
        )
    assert settled is not None  # named by `problem`, or settled from the labels
    return {"type": settled.type, "output": settled.output}


def settle_problem(
    signature: Signature,
    problem: str | None,
    output: str | None,
    class_names: Sequence[str] | None,
    labels: Sequence[Any] = (),
) -> Problem:
    """The problem and output the labels judge (ExportError saying what to pass when they cannot be settled)."""
    if problem is not None and problem not in PROBLEMS:
        raise ExportError(f"problem={problem!r}: give one of {', '.join(PROBLEMS)}")
    try:
        return resolve(signature, {"class_names": list(class_names or ())}, labels, problem, output)
    except ProblemError as exc:
        raise ExportError(f"{exc} (export_model's problem= and quality_output=)") from None


def write_quality_baseline(
    staging: Path,
    model: Any,
    signature: Signature,
    preprocessor: Preprocessor | None,
    validation_data: Any,
    settled: Problem | None,
    output: str | None,
    class_names: Sequence[str] | None,
    drift: Baseline | None,
) -> Problem:
    """Answer the validation rows as training does, and write their metrics to `staging/quality_baseline.json`."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ExportError(
            f"{WHAT} must be a pair (inputs, labels): the raw features as a client sends them, and labels"
        )
    inputs, raw_labels = validation_data
    columns = training_columns(inputs, signature, WHAT)
    values = np.asarray(raw_labels, dtype=object).reshape(-1).tolist()
    rows = len(next(iter(columns.values())))
    if len(values) != rows:
        raise ExportError(f"{WHAT} has {rows} rows of inputs but {len(values)} labels: one label a row")
    problem = settled or settle_problem(signature, None, output, class_names, values)
    truth = np.empty(rows, dtype=np.float64)
    for i, value in enumerate(values):
        try:
            truth[i] = problem.label(value)
        except ValueError as exc:
            raise ExportError(f"{WHAT}'s label {i}: {exc}") from None
    answers = training_predictions(model, signature, preprocessor, columns, WHAT)[problem.output]
    scores = problem.answers(np.asarray(answers).reshape(rows, -1).tolist())
    slices = None
    if drift is not None:
        slicer = Slicer.from_baseline(drift)
        instances = _instances(columns, list(slicer.bins))
        slices = by_slice(slicer, slicer.assign(instances), problem.type, truth, scores)
    quality_baseline.fit(problem, truth, scores, slices).save(staging / QUALITY_FILE)
    return problem


def _instances(columns: Mapping[str, np.ndarray], names: list[str]) -> list[dict[str, Any]]:
    """The sliced features of each row as a client sends them (plain Python values)."""
    plain = {name: columns[name].tolist() for name in names}
    rows = len(next(iter(columns.values())))
    return [{name: plain[name][i] for name in names} for i in range(rows)]

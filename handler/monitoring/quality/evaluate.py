"""Joined rows -> the problem's metrics, each against the quality baseline, and the slices that fell most.

What the offline report prints and what the labels trigger emits as metrics: one `Evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handler.monitoring.quality.baseline import QualityBaseline
from handler.monitoring.quality.join import Joined
from handler.monitoring.quality.labels import Labels, Problems
from handler.monitoring.quality.metrics import METRICS, PRIMARY, Metrics, compute, confusion
from handler.monitoring.quality.problem import Problem
from handler.monitoring.quality.slices import SliceMetrics, Slicer, by_slice, worst


@dataclass
class Evaluation:
    """The quality of one set of labelled rows."""

    problem: Problem
    rows_joined: int
    unmatched_labels: int
    unlabelled_rows: int
    metrics: Metrics
    confusion_matrix: list[list[int]]
    baseline: dict[str, dict[str, Any]] | None
    degraded: list[str]
    slices: SliceMetrics
    worst_slices: list[dict[str, Any]]
    unusable: Problems = field(default_factory=Problems)  # labels that do not fit the problem (and malformed lines)
    notes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        metrics: dict[str, Any] = dict(self.metrics)
        if self.confusion_matrix:
            metrics["confusion_matrix"] = self.confusion_matrix
        out: dict[str, Any] = {
            "problem": self.problem.to_dict(),
            "rows_joined": self.rows_joined,
            "unmatched_labels": self.unmatched_labels,
            "unlabelled_rows": self.unlabelled_rows,
            "malformed_labels": self.unusable.to_dict(),
            "metrics": metrics,
            "baseline": self.baseline,
            "degraded": self.degraded,
            "slices": {"worst": self.worst_slices, "by_feature": self.slices},
        }
        out.update({k: v for k, v in self.notes.items() if v})
        return out


def evaluate(
    joined: Joined,
    labels: Labels,
    problem: Problem,
    baseline: QualityBaseline | None = None,
    slicer: Slicer | None = None,
) -> Evaluation:
    """The joined rows' metrics; a row whose label does not fit the problem is left out and reported."""
    unusable = Problems(labels.malformed.count, list(labels.malformed.examples))
    kept: list[int] = []
    truth: list[float] = []
    wrong_answers = 0  # captured rows whose answer is not the chosen output's shape (another model's capture)
    for i, label in enumerate(joined.labels):
        try:
            value = problem.label(label.value)
        except ValueError as exc:
            unusable.add(f"{label.where}: {exc}")
            continue
        answer = joined.outputs[i].get(problem.output)
        if answer is None or np.size(answer) != problem.width:
            wrong_answers += 1
            continue
        truth.append(value)
        kept.append(i)
    answers = _answers(problem, [joined.outputs[i] for i in kept])
    y = np.asarray(truth, dtype=np.float64)
    metrics = compute(problem.type, y, answers) if len(y) else dict.fromkeys(METRICS[problem.type])
    matrix = confusion(problem.type, y, answers, problem.width) if len(y) and problem.type != "regression" else []
    compared, degraded = baseline.compare(metrics, len(y)) if baseline is not None else (None, [])
    slices: SliceMetrics = {}
    fell: list[dict[str, Any]] = []
    if slicer is not None and len(y):
        slices = by_slice(slicer, slicer.assign([joined.instances[i] for i in kept]), problem.type, y, answers)
        primary = PRIMARY[problem.type]
        overall = baseline.metrics[primary].value if baseline is not None and primary in baseline.metrics else None
        fell = worst(slices, problem.type, overall if overall is not None else metrics[primary], _slices(baseline))
    return Evaluation(
        problem=problem,
        rows_joined=len(y),
        unmatched_labels=joined.unmatched(labels),
        unlabelled_rows=joined.unlabelled_rows,
        metrics=metrics,
        confusion_matrix=matrix,
        baseline=compared,
        degraded=degraded,
        slices=slices,
        worst_slices=fell,
        unusable=unusable,
        notes={
            "replaced_labels": labels.replaced,
            "duplicate_captured_rows": joined.duplicate_rows,
            "malformed_captured_lines": joined.malformed.count,
            "captured_rows_without_the_output": wrong_answers,
        },
    )


def _answers(problem: Problem, outputs: list[dict[str, Any]]) -> np.ndarray:
    """The chosen output of each joined row, as the metrics take it."""
    if not outputs:
        return np.empty((0, problem.width)) if problem.type == "multiclass" else np.empty(0)
    return problem.answers([row.get(problem.output) for row in outputs])


def _slices(baseline: QualityBaseline | None) -> SliceMetrics | None:
    return baseline.slices if baseline is not None and baseline.slices else None

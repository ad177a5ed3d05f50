"""`quality_baseline.json`: the model's metrics on held-out data at export, with bootstrap intervals, and the
thresholds that say when served quality is worse.

The export computes the metrics on the validation data through the training pipeline, then again on
`RESAMPLES` bootstrap resamples of it (rows drawn with replacement, a fixed seed): each metric's interval
holds the middle `CONFIDENCE` of those values. A window of served rows is worse than training when a metric
is worse than the baseline value by more than the difference two honest samples would show at the chosen
false-alarm rate: the interval gives the metric's standard error at the validation set's size, M rows; a
window of n rows has its own, sqrt(M / n) times larger, and the two add in quadrature, so

    threshold(n) = z(FALSE_ALARM_RATE) * se(M) * sqrt(1 + M / n),   se(M) = interval width / (2 z(CONFIDENCE))

No fixed percentage: a model with a tight interval (much validation data, a stable metric) is held closer. A
`"threshold"` written into a metric's entry by hand replaces the computed one (a drop in the metric's own
units). A zero-width interval (a perfect validation score) is widened to one row's worth.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from handler.monitoring.quality.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    Metrics,
    ProblemType,
    compute,
    confusion,
    worsening,
)
from handler.monitoring.quality.problem import Problem

QUALITY_FORMAT = 1
RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
# Per metric, the chance that honest served labels are called worse: a problem type has 4-5 correlated metrics.
FALSE_ALARM_RATE = 0.001


@dataclass(frozen=True)
class MetricBaseline:
    value: float
    interval: tuple[float, float] | None  # the bootstrap's middle CONFIDENCE; None when too few resamples define it
    threshold: float | None = None  # a fixed drop, set by hand; None: computed from the interval

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "interval": list(self.interval) if self.interval else None}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


@dataclass(frozen=True)
class QualityBaseline:
    """The metrics on the validation data, and when a served window is worse."""

    problem: ProblemType
    output: str
    rows: int
    metrics: dict[str, MetricBaseline]
    confusion_matrix: list[list[int]] = field(default_factory=list)
    slices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    confidence: float = CONFIDENCE
    false_alarm_rate: float = FALSE_ALARM_RATE
    resamples: int = RESAMPLES

    def threshold(self, name: str, rows: int) -> float | None:
        """How much worse than the baseline a metric of `rows` served rows may be before it is degraded."""
        m = self.metrics.get(name)
        if m is None or rows <= 0:
            return None
        if m.threshold is not None or m.interval is None:
            return m.threshold
        lo, hi = m.interval
        se = (hi - lo) / (2 * NormalDist().inv_cdf(0.5 + self.confidence / 2))
        one_row = (abs(m.value) if name in LOWER_IS_BETTER else 1.0) / self.rows
        z = NormalDist().inv_cdf(1 - self.false_alarm_rate)
        return z * max(se, one_row) * math.sqrt(1 + self.rows / rows)

    def compare(self, metrics: Metrics, rows: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Each metric against its baseline, and the names of those worse by more than their threshold."""
        out: dict[str, dict[str, Any]] = {}
        degraded = []
        for name, base in self.metrics.items():
            value, limit = metrics.get(name), self.threshold(name, rows)
            entry: dict[str, Any] = {"value": value, "baseline": base.value, "interval": base.to_dict()["interval"]}
            entry["threshold"] = limit
            worse = worsening(name, value, base.value) if value is not None else None
            entry["worse_by"] = worse
            entry["degraded"] = worse is not None and limit is not None and worse > limit
            if entry["degraded"]:
                degraded.append(name)
            out[name] = entry
        return out, degraded

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": QUALITY_FORMAT,
            "problem": self.problem,
            "output": self.output,
            "rows": self.rows,
            "bootstrap": {"resamples": self.resamples, "seed": SEED, "confidence": self.confidence},
            "false_alarm_rate": self.false_alarm_rate,
            "metrics": {n: m.to_dict() for n, m in self.metrics.items()},
            "confusion_matrix": self.confusion_matrix,
            "slices": self.slices,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QualityBaseline:
        if d.get("format") != QUALITY_FORMAT:
            raise ValueError(f"quality baseline format {d.get('format')!r}; this version reads {QUALITY_FORMAT}")
        if d.get("problem") not in METRICS:
            raise ValueError(f"problem {d.get('problem')!r} is not one of {', '.join(METRICS)}")
        metrics = {}
        for name, m in dict(d["metrics"]).items():
            interval = m.get("interval")
            metrics[str(name)] = MetricBaseline(
                float(m["value"]),
                (float(interval[0]), float(interval[1])) if interval else None,
                float(m["threshold"]) if m.get("threshold") is not None else None,
            )
        boot = d.get("bootstrap") or {}
        return cls(
            problem=d["problem"],
            output=str(d["output"]),
            rows=int(d["rows"]),
            metrics=metrics,
            confusion_matrix=list(d.get("confusion_matrix") or []),
            slices=dict(d.get("slices") or {}),
            confidence=float(boot.get("confidence", CONFIDENCE)),
            false_alarm_rate=float(d.get("false_alarm_rate", FALSE_ALARM_RATE)),
            resamples=int(boot.get("resamples", RESAMPLES)),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> QualityBaseline:
        return cls.from_dict(json.loads(path.read_text()))


def bootstrap(
    problem: ProblemType, labels: np.ndarray, answers: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, tuple[float, float] | None]:
    """Each metric's interval over `resamples` resamples of the rows (None where fewer than 90% define it)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    seen: dict[str, list[float]] = {name: [] for name in METRICS[problem]}
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        for name, value in compute(problem, labels[rows], answers[rows]).items():
            if value is not None:
                seen[name].append(value)
    tail = (1 - CONFIDENCE) / 2
    out: dict[str, tuple[float, float] | None] = {}
    for name, values in seen.items():
        if len(values) < 0.9 * resamples:
            out[name] = None
            continue
        lo, hi = np.quantile(np.asarray(values), [tail, 1 - tail])
        out[name] = (float(lo), float(hi))
    return out


def fit(
    problem: Problem,
    labels: np.ndarray,
    answers: np.ndarray,
    slices: dict[str, dict[str, dict[str, Any]]] | None = None,
    resamples: int = RESAMPLES,
) -> QualityBaseline:
    """The baseline of validation labels and the model's answers to their rows (metrics a sample cannot define, as
    AUC with one class, are left out)."""
    metrics = compute(problem.type, labels, answers)
    intervals = bootstrap(problem.type, labels, answers, resamples)
    matrix = [] if problem.type == "regression" else confusion(problem.type, labels, answers, problem.width)
    return QualityBaseline(
        problem=problem.type,
        output=problem.output,
        rows=len(labels),
        metrics={n: MetricBaseline(v, intervals[n]) for n, v in metrics.items() if v is not None},
        confusion_matrix=matrix,
        slices=slices or {},
        resamples=resamples,
    )

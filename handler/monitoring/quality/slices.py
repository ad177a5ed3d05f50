"""Where quality fell: each metric by the values of each categorical feature and by bins of each numeric one.

The slices are the drift watch's bins (`baseline.json`): a numeric feature's training quantile bins, a
categorical feature's training values and the rest. So a slice means the same in the drift report and here,
and a served value training never had falls in an end bin or the rest. Features that are tensors are not
sliced. The slices whose quality fell most (the primary metric against the same slice on the validation data
at export, or against the whole, without one) are named with their row counts, so a drop confined to one
segment shows even where the overall metric holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Bins
from handler.monitoring.quality.metrics import PRIMARY, ProblemType, compute, worsening

# A slice of fewer rows is listed but never named among the worst: its metric is mostly noise.
MIN_SLICE_ROWS = 30
WORST = 5
NO_VALUE = -1

SliceMetrics = dict[str, dict[str, dict[str, Any]]]  # feature -> slice -> {"rows": n, metric: value}


@dataclass(frozen=True)
class Slicer:
    """Each scalar feature's slices: its bins in the drift baseline."""

    bins: dict[str, Bins]
    only: str | None = None  # the feature of a one-input model, whose rows are bare values

    @classmethod
    def from_baseline(cls, baseline: Baseline) -> Slicer:
        refs = baseline.features
        chosen = {n: r.bins[0] for n, r in refs.items() if r.kind in ("numeric", "categorical") and not r.shape}
        return cls(chosen, next(iter(refs)) if len(refs) == 1 else None)

    def names(self, feature: str) -> list[str]:
        """The slices' names, as the drift report's plots name the bins."""
        return self.bins[feature].labels()

    def assign(self, instances: Sequence[Any]) -> dict[str, np.ndarray]:
        """Per feature, each row's slice (NO_VALUE where the row has none usable)."""
        out = {}
        for name, bins in self.bins.items():
            values = [_value(row, name, self.only) for row in instances]
            if bins.values is not None:
                index = {v: i for i, v in enumerate(bins.values)}
                rest = len(bins.values)
                out[name] = np.array([NO_VALUE if v is None else index.get(str(v), rest) for v in values], np.intp)
            else:
                x = np.array([_number(v) for v in values], dtype=np.float64)
                edges = bins.edges if bins.edges is not None else np.empty(0)
                slot = np.searchsorted(edges, np.nan_to_num(x), side="right")
                out[name] = np.where(np.isfinite(x), slot, NO_VALUE)
        return out


def _value(row: Any, name: str, only: str | None) -> Any:
    value = row.get(name) if isinstance(row, Mapping) else row if name == only else None
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def by_slice(
    slicer: Slicer, assignment: Mapping[str, np.ndarray], problem: ProblemType, labels: np.ndarray, answers: np.ndarray
) -> SliceMetrics:
    """Every metric of every slice with at least one row."""
    out: SliceMetrics = {}
    for feature, slots in assignment.items():
        names = slicer.names(feature)
        found = {}
        for slot in np.unique(slots[slots != NO_VALUE]).tolist():
            rows = slots == slot
            found[names[slot]] = {"rows": int(rows.sum()), **compute(problem, labels[rows], answers[rows])}
        out[feature] = found
    return out


def worst(
    slices: SliceMetrics,
    problem: ProblemType,
    overall: float | None,
    reference: SliceMetrics | None = None,
    top: int = WORST,
) -> list[dict[str, Any]]:
    """The slices whose primary metric is furthest below the same slice in `reference` (the validation data's),
    or below `overall` where that slice has no reference of MIN_SLICE_ROWS rows; worst first."""
    metric = PRIMARY[problem]
    found = []
    for feature, by_name in slices.items():
        for name, got in by_name.items():
            value = got.get(metric)
            if got["rows"] < MIN_SLICE_ROWS or value is None:
                continue
            before = ((reference or {}).get(feature) or {}).get(name) or {}
            base = before.get(metric) if before.get("rows", 0) >= MIN_SLICE_ROWS else None
            base = base if base is not None else overall
            if base is None:
                continue
            found.append(
                {
                    "feature": feature,
                    "slice": name,
                    "rows": got["rows"],
                    "metric": metric,
                    "value": value,
                    "reference": base,
                    "worse_by": worsening(metric, value, base),
                }
            )
    found.sort(key=lambda s: -s["worse_by"])
    return found[:top]

"""Where quality fell: each metric by the values of each categorical feature and by bins of each numeric one.

The slices are the drift watch's bins (`baseline.json`): a numeric feature's training quantile bins, a
categorical feature's training values and the rest. So a slice means the same in the drift report and here,
and a served value training never had falls in an end bin or the rest. Features that are tensors are not
sliced. The slices whose quality fell most (the primary metric against the same slice on the validation data
at export, or against the whole, without one) are named with their row counts, so a drop confined to one
segment shows even where the overall metric holds.

A value falls in its slice as the drift watch counts it: a whole float is its int (a JSON file's 17.0 is
training's 17). An index input (an `Embedding`'s ids, binned per id in `baseline.json`) is sliced by the runs
of neighbouring ids its PSI is taken over (`index.groups`, about a tenth of training each, named "13–31"), and
the rest: per id, 200 ids leave a few rows a slice, under MIN_SLICE_ROWS, so none would ever be named. Its
id is read as the watch reads it, so 17, 17.0 and "17" are all id 17.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handler.monitoring import index
from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import BINS, Bins, Reference
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
    # An index input's: its first id and each id's slice (its run of neighbouring ids); the last slice is the rest.
    ids: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_baseline(cls, baseline: Baseline) -> Slicer:
        refs = baseline.features
        chosen = {n: r.bins[0] for n, r in refs.items() if r.kind in ("numeric", "categorical") and not r.shape}
        ids = {}
        for name, ref in refs.items():
            if name in chosen and ref.index_range is not None:
                chosen[name], run = index_runs(ref)
                ids[name] = (ref.index_range[0], run)
        return cls(chosen, next(iter(refs)) if len(refs) == 1 else None, ids)

    def names(self, feature: str) -> list[str]:
        """The slices' names, as the drift report's plots name the bins."""
        return self.bins[feature].labels()

    def assign(self, instances: Sequence[Any]) -> dict[str, np.ndarray]:
        """Per feature, each row's slice (NO_VALUE where the row has none usable)."""
        out = {}
        for name, bins in self.bins.items():
            values = [_value(row, name, self.only) for row in instances]
            if name in self.ids:
                lo, run = self.ids[name]
                # Each id's run; outside the range (or not a whole number), the rest: the runs' last slice.
                slot_of = np.append(run, len(bins.fractions) - 1)
                at = [NO_VALUE if v is None else _id(v, lo, len(run)) for v in values]
                out[name] = np.array([NO_VALUE if i == NO_VALUE else slot_of[i] for i in at], np.intp)
            elif bins.values is not None:
                lookup = {v: i for i, v in enumerate(bins.values)}
                rest = len(bins.values)
                out[name] = np.array(
                    [NO_VALUE if v is None else lookup.get(_category(v), rest) for v in values], np.intp
                )
            else:
                x = np.array([_number(v) for v in values], dtype=np.float64)
                edges = bins.edges if bins.edges is not None else np.empty(0)
                slot = np.searchsorted(edges, np.nan_to_num(x), side="right")
                out[name] = np.where(np.isfinite(x), slot, NO_VALUE)
        return out


def index_runs(ref: Reference) -> tuple[Bins, np.ndarray]:
    """An index's per-id bins merged into its runs of neighbouring ids (as its PSI is), each named by its first and
    last id, then the rest; and each id's run."""
    lo = ref.index_range[0] if ref.index_range is not None else 0
    fractions = np.asarray(ref.bins[0].fractions, dtype=np.float64)
    group = index.groups(fractions, BINS)
    run, rest = group[:-1], int(group[-1])
    names = []
    for g in range(rest):
        members = np.flatnonzero(run == g)
        first, last = lo + int(members[0]), lo + int(members[-1])
        names.append(str(first) if first == last else f"{first}–{last}")
    merged = np.append(np.bincount(run, weights=fractions[:-1], minlength=rest), fractions[-1])
    return Bins(merged, values=tuple(names)), run


def _id(value: Any, lo: int, count: int) -> int:
    """An index value's position in its range [lo, lo + count), or `count` (the rest): 17, 17.0 and "17" alike."""
    x = _number(value)
    if not math.isfinite(x) or x != math.floor(x) or not lo <= x < lo + count:
        return count
    return int(x) - lo


def _category(value: Any) -> str:
    """A value as a categorical bin names it: a whole float as its int (a served 17.0 is training's 17)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


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

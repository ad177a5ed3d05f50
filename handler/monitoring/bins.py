"""Histograms of training values, served values counted into them, and the distance between the two.

Numeric bins are cut points (about ten quantiles, deduplicated, so a discrete feature gets a bin per
value); categorical bins are values plus one bin for the rest; an index input's are its ids
(`index_bins`). The distance is the population stability index, with empty bins floored:
PSI = sum((served - training) * ln(served / training)).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handler.monitoring import index

BINS = 10
TOP_VALUES = 100
# A bin empty on one side counts as this fraction: ln(0) would make any new value infinitely far.
FLOOR = 1e-4

_SMALL_INTS = {np.dtype(np.uint8): 0, np.dtype(np.int8): -128, np.dtype(np.bool_): 0}


@dataclass(frozen=True)
class Bins:
    """A training distribution over bins: numeric cut points, or categorical values plus one bin for the rest."""

    fractions: np.ndarray
    edges: np.ndarray | None = None  # numeric: bins (-inf, e0), [e0, e1), ..., [e_last, inf)
    values: tuple[str, ...] | None = None  # categorical: one bin per value, then the rest
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _luts: dict[np.dtype[Any], np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    # The floored training fractions and their logarithms, computed once: a window compares every bin.
    _q: list[float] = field(init=False, compare=False, repr=False)
    _log_q: list[float] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.values is not None:
            self._index.update({v: i for i, v in enumerate(self.values)})
        q = np.maximum(np.asarray(self.fractions, dtype=np.float64), FLOOR)
        object.__setattr__(self, "_q", q.tolist())
        object.__setattr__(self, "_log_q", np.log(q).tolist())

    def distance(self, counts: np.ndarray) -> tuple[float, tuple[float, ...]]:
        """`psi(counts, self.fractions)` and the served fractions, for every bin set of every window: in plain
        Python, as a few dozen bins cost less as floats than as numpy calls."""
        found = counts.tolist()
        total = sum(found)
        if not total:
            return math.nan, tuple(0.0 for _ in found)
        served = tuple(n / total for n in found)
        score = 0.0
        for p, q, log_q in zip(served, self._q, self._log_q, strict=True):
            p = p if p > FLOOR else FLOOR
            score += (p - q) * (math.log(p) - log_q)
        return score, served

    def count(self, x: np.ndarray) -> np.ndarray:
        """How many of the values fall in each bin."""
        k = len(self.fractions)
        edges = self.edges if self.edges is not None else np.empty(0)
        if self.values is not None:
            # Count the distinct values in C first, then place the few distinct ones: cheaper than a lookup per value.
            counts = np.zeros(k, dtype=np.int64)
            for value, n in Counter(x.ravel().tolist()).items():
                counts[self._index.get(_key(value), k - 1)] += n
            return counts
        if x.dtype in _SMALL_INTS:
            # A lookup table over every value of the dtype: ~10x cheaper than a search per pixel.
            lut = self._luts.get(x.dtype)
            if lut is None:
                lo = _SMALL_INTS[x.dtype]
                lut = np.searchsorted(edges, np.arange(lo, lo + 256 if x.dtype != np.bool_ else 2), "right")
                self._luts[x.dtype] = lut
            idx = lut[x.ravel().astype(np.intp) - _SMALL_INTS[x.dtype]]
        else:
            idx = np.searchsorted(edges, x.ravel(), side="right")
        return np.bincount(idx, minlength=k)

    def labels(self) -> list[str]:
        """A short name per bin, for plots."""
        if self.values is not None:
            return [*self.values, "(rest)"]
        e = [f"{v:.3g}" for v in self.edges]  # type: ignore[union-attr]
        return [f"<{e[0]}", *(f"{a}–{b}" for a, b in zip(e, e[1:], strict=False)), f"≥{e[-1]}"]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fractions": self.fractions.tolist()}
        if self.edges is not None:
            out["edges"] = self.edges.tolist()
        if self.values is not None:
            out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Bins:
        edges = np.asarray(d["edges"], dtype=np.float64) if "edges" in d else None
        values = tuple(str(v) for v in d["values"]) if "values" in d else None
        bins = cls(np.asarray(d["fractions"], dtype=np.float64), edges, values)
        width = (len(edges) if edges is not None else len(values or ())) + 1
        if len(bins.fractions) != width or (edges is None) == (values is None):
            raise ValueError("a histogram needs 'edges' or 'values' and one fraction per bin")
        return bins


def numeric_bins(x: np.ndarray, bins: int = BINS, uniform: bool = False) -> Bins:
    """Quantile bins of finite values; equal cut points merge, so a feature with few values gets one bin per value.

    `uniform` adds equal-width cut points over [min, max]. Images and sequences get them: a window
    holds examples x positions values per channel, so finer bins add no noise, and pixel deciles
    alone put every stroke of a dark-background image into one top bin (a darker image would go
    unseen).
    """
    # Cut points are training values (not interpolated), so a discrete feature's bins fall on its values.
    cuts = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    if uniform:
        cuts = np.concatenate([cuts, np.linspace(x.min(), x.max(), bins + 1)[1:-1]])
    edges = np.unique(cuts)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return Bins(counts / max(x.size, 1), edges=edges)


def categorical_bins(x: np.ndarray, top: int = TOP_VALUES) -> tuple[Bins, bool]:
    """The `top` most frequent values and the rest; True when they are every value training had."""
    values, counts = np.unique(np.asarray([_key(v) for v in x.ravel().tolist()], dtype=object), return_counts=True)
    order = np.lexsort((values, -counts))[:top]
    kept = counts[order]
    fractions = np.append(kept, counts.sum() - kept.sum()) / max(counts.sum(), 1)
    return Bins(fractions, values=tuple(str(v) for v in values[order])), len(values) <= top


def _key(v: Any) -> str:
    """A value as its bin names it: text as is, a whole number as an int (a served 17.0 is training's 17)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def index_bins(x: np.ndarray, lo: int, hi: int) -> Bins:
    """One bin per id of [lo, hi) (ids training never had included, at 0), then one for anything else."""
    counts = index.count(x, lo, hi)
    return Bins(counts / max(int(counts.sum()), 1), values=tuple(str(v) for v in range(lo, hi)))


def psi(counts: np.ndarray, fractions: np.ndarray, floor: float = FLOOR) -> float:
    """Population stability index of served bin counts against training fractions (NaN when nothing was served)."""
    total = counts.sum()
    if total == 0:
        return math.nan
    p = np.maximum(counts / total, floor)
    q = np.maximum(fractions, floor)
    return float(np.sum((p - q) * np.log(p / q)))

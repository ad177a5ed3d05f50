"""Training statistics (what `baseline.json` holds) and the distance of served data from them.

Numpy only, shared by the export (which fits the baseline), the server's drift watch (which
counts served rows into the baseline's bins) and the offline report (which counts a file's rows).

- A scalar number: count, missing, mean, std, min, max and the training fraction in each of
  about ten quantile bins (cut points deduplicated, so a discrete feature gets a bin per value).
- A string: the frequencies of its top values (up to 100) and of the rest.
- A tensor: per channel (the last axis, when it has at most 16 entries) mean, std and a value
  histogram over quantile and equal-width bins; a string tensor, its token frequencies.
- Each output: the same, over what the trained model answered for the training data.

The distance is the population stability index over those bins, with empty bins floored:
PSI = sum((served - training) * ln(served / training)). For a tensor it is the largest over its
channels. See the README ("Watching for drift") for the measurements behind the threshold.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from handler.core.signature import TensorSpec

BINS = 10
TOP_VALUES = 100
MAX_CHANNELS = 16
# Values per example and channel that are binned: a large image is sampled on a fixed stride.
MAX_POSITIONS = 1024
# A bin empty on one side counts as this fraction: ln(0) would make any new value infinitely far.
FLOOR = 1e-4
DEFAULT_THRESHOLD = 0.1

Kind = Literal["numeric", "categorical", "tensor", "tokens"]
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
                counts[self._index.get(value, k - 1)] += n
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
    values, counts = np.unique(np.asarray([_text(v) for v in x.ravel().tolist()], dtype=object), return_counts=True)
    order = np.lexsort((values, -counts))[:top]
    kept = counts[order]
    fractions = np.append(kept, counts.sum() - kept.sum()) / max(counts.sum(), 1)
    return Bins(fractions, values=tuple(str(v) for v in values[order])), len(values) <= top


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def psi(counts: np.ndarray, fractions: np.ndarray, floor: float = FLOOR) -> float:
    """Population stability index of served bin counts against training fractions (NaN when nothing was served)."""
    total = counts.sum()
    if total == 0:
        return math.nan
    p = np.maximum(counts / total, floor)
    q = np.maximum(fractions, floor)
    return float(np.sum((p - q) * np.log(p / q)))


# --- one feature or output ---------------------------------------------------------------------


def _kind(spec: TensorSpec) -> Kind:
    if spec.kind == "string":
        return "categorical" if spec.rank == 0 else "tokens"
    return "numeric" if spec.rank == 0 else "tensor"


def _channels(shape: Sequence[int | None]) -> int:
    last = shape[-1] if shape else 1
    return last if last is not None and 1 <= last <= MAX_CHANNELS else 1


def _values(x: np.ndarray, channels: int) -> np.ndarray:
    """A numeric batch -> [values, channels], sampling positions on a fixed stride past MAX_POSITIONS."""
    v = x.reshape(len(x), -1, channels)
    step = -(-v.shape[1] // MAX_POSITIONS)
    return (v[:, ::step, :] if step > 1 else v).reshape(-1, channels)


@dataclass
class Tally:
    """What was served of one feature or output, summed over batches: bin counts and rule counts."""

    counts: list[np.ndarray]  # per channel
    values: int = 0  # finite values per channel (strings: values)
    missing: int = 0
    out_of_range: int = 0
    out_of_vocabulary: int = 0
    imputed: int = 0
    total: float = 0.0  # sum of the values (numbers), for the served mean

    def add(self, other: Tally) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.values += other.values
        self.missing += other.missing
        self.out_of_range += other.out_of_range
        self.out_of_vocabulary += other.out_of_vocabulary
        self.imputed += other.imputed
        self.total += other.total


@dataclass(frozen=True)
class Reference:
    """The training distribution of one feature or output."""

    name: str
    kind: Kind
    shape: tuple[int | None, ...]
    count: int  # values (numbers: finite ones; tensors: per channel)
    missing: int
    bins: tuple[Bins, ...]  # one per channel
    stats: dict[str, Any] = field(default_factory=dict)  # numbers: mean, std, min, max (lists per channel)
    complete: bool = False  # strings: the listed values are every value training had
    fill_value: float | None = None  # what NON_FINITE=impute puts in place of NaN
    _lo: np.ndarray = field(init=False, compare=False, repr=False)
    _hi: np.ndarray = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lo", np.atleast_1d(np.asarray(self.stats.get("min", np.nan), dtype=np.float64)))
        object.__setattr__(self, "_hi", np.atleast_1d(np.asarray(self.stats.get("max", np.nan), dtype=np.float64)))

    @classmethod
    def fit(cls, spec: TensorSpec, x: np.ndarray) -> Reference:
        kind = _kind(spec)
        if kind in ("categorical", "tokens"):
            flat = np.asarray(x, dtype=object).ravel()
            present = np.array([v is not None for v in flat.tolist()], dtype=bool)
            bins, complete = categorical_bins(flat[present])
            missing = int(flat.size - present.sum())
            return cls(spec.name, kind, spec.shape, int(present.sum()), missing, (bins,), complete=complete)
        channels = _channels(spec.shape)
        v = _values(np.asarray(x, dtype=np.float64), channels)
        finite = np.isfinite(v)
        cols = [v[finite[:, c], c] for c in range(channels)]
        if any(c.size == 0 for c in cols):
            raise ValueError(f"'{spec.name}' has no finite training value to describe")
        stats = {
            "mean": [float(c.mean()) for c in cols],
            "std": [float(c.std()) for c in cols],
            "min": [float(c.min()) for c in cols],
            "max": [float(c.max()) for c in cols],
        }
        described: dict[str, Any] = {k: s[0] for k, s in stats.items()} if kind == "numeric" else dict(stats)
        count, missing = int(finite.sum()) // channels, int(v.size - finite.sum())
        positions = v.shape[0] // max(len(x), 1)
        histograms = tuple(numeric_bins(c, uniform=positions > 1) for c in cols)
        if spec.fill_value is not None:
            # A fill value real data also takes (3.0 of a 1..5 score) cannot tell imputed values from real ones.
            described["fill_share"] = float(np.mean(cols[0] == spec.fill_value))
        return cls(spec.name, kind, spec.shape, count, missing, histograms, described, False, spec.fill_value)

    def tally(self, x: np.ndarray) -> Tally:
        """Count a served batch [n, *shape] into the bins, with the rule counts."""
        if self.kind in ("categorical", "tokens"):
            found = self.bins[0].count(np.asarray(x, dtype=object))
            oov = int(found[-1]) if self.complete else 0
            return Tally([found], values=int(x.size), out_of_vocabulary=oov)
        # A scalar stays one flat column: every reshape and per-channel view costs on the hot path.
        v = x if self.kind == "numeric" and x.ndim == 1 else _values(x, len(self.bins))
        missing = 0
        if v.dtype.kind == "f":
            finite = np.isfinite(v)
            if not finite.all():
                missing = int(v.size - finite.sum())
                v = v[finite] if v.ndim == 1 else v[finite.all(axis=1)]  # a row with a NaN output is no answer
        if v.ndim == 1:
            counts = [self.bins[0].count(v)]
            lo, hi = self._lo[0], self._hi[0]
        else:
            counts = [b.count(v[:, c]) for c, b in enumerate(self.bins)]
            lo, hi = self._lo, self._hi
        t = Tally(counts, values=len(v), missing=missing)
        t.out_of_range = int(np.count_nonzero((v < lo) | (v > hi)))
        t.total = float(v.sum(dtype=np.float64))
        if self.fill_value is not None and not self.stats.get("fill_share"):
            t.imputed = int(np.count_nonzero(v == self.fill_value))
        return t

    def compare(self, t: Tally, threshold: float) -> Drift:
        """The served tally against training: the distance, and the rule rates."""
        if len(self.bins) == 1:
            worst, (score, served) = 0, self.bins[0].distance(t.counts[0])
        else:
            scores = [b.distance(c) for c, b in zip(t.counts, self.bins, strict=True)]
            worst = max(range(len(scores)), key=lambda i: -1.0 if math.isnan(scores[i][0]) else scores[i][0])
            score, served = scores[worst]
        numbers = self.kind in ("numeric", "tensor")
        n_values = t.values * (len(self.bins) if numbers else 1)
        some = n_values > 0  # every rate is a count of values over n_values
        watch_imputed = self.fill_value is not None and not self.stats.get("fill_share")
        return Drift(
            name=self.name,
            kind=self.kind,
            score=score,
            drifted=score > threshold,
            values=t.values,
            channel=worst if len(self.bins) > 1 else None,
            served=served,
            out_of_range=t.out_of_range / n_values if numbers and some else None,
            out_of_vocabulary=t.out_of_vocabulary / n_values if not numbers and self.complete and some else None,
            imputed=t.imputed / n_values if watch_imputed and some else None,
            mean=t.total / n_values if numbers and some and math.isfinite(t.total) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "count": self.count}
        out["missing"] = self.missing
        out.update(self.stats)
        if self.kind in ("categorical", "tokens"):
            out["complete"] = self.complete
        if self.fill_value is not None:
            out["fill_value"] = self.fill_value
        out["bins"] = [b.to_dict() for b in self.bins]
        return out

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Reference:
        stats = {k: d[k] for k in ("mean", "std", "min", "max", "fill_share") if k in d}
        return cls(
            name=name,
            kind=d["kind"],
            shape=tuple(None if s is None else int(s) for s in d["shape"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            bins=tuple(Bins.from_dict(b) for b in d["bins"]),
            stats=stats,
            complete=bool(d.get("complete", False)),
            fill_value=float(d["fill_value"]) if d.get("fill_value") is not None else None,
        )


@dataclass(frozen=True)
class Drift:
    """One feature or output of a window (or a file) against training."""

    name: str
    kind: Kind
    score: float  # PSI; NaN when no value was served
    drifted: bool
    values: int
    channel: int | None  # the channel with the largest distance, for tensors with channels
    served: tuple[float, ...]  # fractions per bin of that channel (the training ones are in the baseline)
    out_of_range: float | None = None  # numbers outside training [min, max]
    out_of_vocabulary: float | None = None  # strings training never had (when it had few enough to list)
    # Values equal to what NON_FINITE=impute puts in place of NaN (when training never had that value exactly).
    imputed: float | None = None
    mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": None if math.isnan(self.score) else round(self.score, 6),
            "drifted": self.drifted,
            "kind": self.kind,
            "values": self.values,
        }
        for key in ("channel", "out_of_range", "out_of_vocabulary", "imputed", "mean"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class DriftReport:
    """A window of served rows (or a whole file) against the baseline."""

    rows: int
    threshold: float
    features: dict[str, Drift]
    outputs: dict[str, Drift]

    def drifted_names(self, side: Literal["features", "outputs"] = "features") -> list[str]:
        items = self.features if side == "features" else self.outputs
        return [d.name for d in sorted(items.values(), key=lambda d: -d.score if d.drifted else 0) if d.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "distance": "psi",
            "threshold": self.threshold,
            "features": {n: d.to_dict() for n, d in self.features.items()},
            "outputs": {n: d.to_dict() for n, d in self.outputs.items()},
            "drifted": self.drifted_names("features"),
            "predictions_drifted": self.drifted_names("outputs"),
        }

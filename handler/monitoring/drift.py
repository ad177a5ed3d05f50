"""Training statistics (what `baseline.json` holds) and the distance of served data from them.

Numpy only, shared by the export (which fits the baseline), the server's drift watch (which
counts served rows into the baseline's bins) and the offline report (which counts a file's rows).

- A scalar number: count, missing, mean, std, min, max and the training fraction in each of
  about ten quantile bins (cut points deduplicated, so a discrete feature gets a bin per value).
- A string: the frequencies of its top values (up to 100) and of the rest; an index input (an
  integer whose signature records a range of at most 1,000 ids), one bin per id (`index`).
- A tensor: per channel (the last axis, when it has at most 16 entries) mean, std and a value
  histogram over quantile and equal-width bins; a string tensor, its token frequencies.
- Each output: the same, over what the trained model answered for the training data.

The distance is the population stability index over those bins, with empty bins floored:
PSI = sum((served - training) * ln(served / training)). For a tensor it is the largest over its
channels, and every channel over the threshold (by PSI, dispersion or shift) is listed (`drifted_channels`).
Beside it, a dispersion score on the same scale (`dispersion`): a change of spread or concentration
that leaves the bins' shares alone; and for numbers a shift score (`shift`), which keeps growing where
PSI saturates. Each feature's threshold is calibrated at export (`calibration`). The bins and PSI
are `bins`'. See docs/drift.md for the measurements behind the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from handler.core.signature import TensorSpec
from handler.monitoring import blocks, dispersion, index, shift
from handler.monitoring.bins import BINS as BINS
from handler.monitoring.bins import Bins as Bins
from handler.monitoring.bins import categorical_bins, index_bins, numeric_bins
from handler.monitoring.bins import psi as psi
from handler.monitoring.dispersion import Dispersion, Moments

MAX_CHANNELS = 16
# Values per example and channel that are binned: a large image is sampled on a fixed stride.
MAX_POSITIONS = 1024
DEFAULT_THRESHOLD = 0.1

Kind = Literal["numeric", "categorical", "tensor", "tokens"]


# --- one feature or output ---------------------------------------------------------------------


def _kind(spec: TensorSpec) -> Kind:
    if spec.kind == "string":
        return "categorical" if spec.rank == 0 else "tokens"
    return "numeric" if spec.rank == 0 else "tensor"


def _channels(shape: Sequence[int | None]) -> int:
    last = shape[-1] if shape else 1
    return last if last is not None and 1 <= last <= MAX_CHANNELS else 1


def _positions(x: np.ndarray, channels: int) -> np.ndarray:
    """A numeric batch -> [examples, positions, channels], sampling positions on a fixed stride past MAX_POSITIONS."""
    v = x.reshape(len(x), -1, channels)
    step = -(-v.shape[1] // MAX_POSITIONS)
    return v[:, ::step, :] if step > 1 else v


def _values(x: np.ndarray, channels: int) -> np.ndarray:
    """A numeric batch -> [values, channels]."""
    return _positions(x, channels).reshape(-1, channels)


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
    spread: Moments | None = None  # numbers: per channel, for the served std
    steps: Moments | None = None  # sequences and images: of the steps between neighbouring positions
    blocks: Moments | None = None  # sequences and images: of each example's block means (`blocks`)

    def add(self, other: Tally) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.values += other.values
        self.missing += other.missing
        self.out_of_range += other.out_of_range
        self.out_of_vocabulary += other.out_of_vocabulary
        self.imputed += other.imputed
        self.total += other.total
        for part in ("spread", "steps", "blocks"):
            mine, theirs = getattr(self, part), getattr(other, part)
            setattr(self, part, theirs if mine is None else mine if theirs is None else mine + theirs)


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
    index_range: tuple[int, int] | None = None  # an index input binned per id: its ids [lo, hi)
    # Calibrated at export (`calibration`): the score a window of the calibration's rows passes by chance
    # at the false-alarm rate; None in a baseline exported before calibration (DEFAULT_THRESHOLD applies).
    threshold: float | None = None
    _lo: np.ndarray = field(init=False, compare=False, repr=False)
    _hi: np.ndarray = field(init=False, compare=False, repr=False)
    # An index's per-id bins merged into runs of neighbouring ids, for PSI (see `index`).
    _runs: tuple[np.ndarray, Bins] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lo", np.atleast_1d(np.asarray(self.stats.get("min", np.nan), dtype=np.float64)))
        object.__setattr__(self, "_hi", np.atleast_1d(np.asarray(self.stats.get("max", np.nan), dtype=np.float64)))
        runs = None
        if self.index_range is not None:
            run = index.groups(self.bins[0].fractions, BINS)
            runs = (run, Bins(np.bincount(run, weights=self.bins[0].fractions)))
        object.__setattr__(self, "_runs", runs)

    @classmethod
    def fit(cls, spec: TensorSpec, x: np.ndarray) -> Reference:
        kind = _kind(spec)
        if spec.kind == "int" and index.is_small_range(spec.index_range):  # a scalar id, or a sequence of them
            lo, hi = spec.index_range  # type: ignore[misc]
            bins = index_bins(x, lo, hi)
            n = int(np.asarray(x).size)
            return cls(spec.name, "categorical", spec.shape, n, 0, (bins,), complete=True, index_range=(lo, hi))
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
        positions = v.shape[0] // max(len(x), 1)
        if positions > 1:
            steps = dispersion.steps(_positions(np.asarray(x, dtype=np.float64), channels))
            stats["step_std"] = [float(s) for s in steps.std(axis=0)]
            axes = blocks.spatial(spec.shape, channels)
            if axes is not None:
                stats.update(blocks.fit(np.asarray(x), axes, channels))
        described: dict[str, Any] = {k: s[0] for k, s in stats.items()} if kind == "numeric" else dict(stats)
        count, missing = int(finite.sum()) // channels, int(v.size - finite.sum())
        histograms = tuple(numeric_bins(c, uniform=positions > 1) for c in cols)
        if spec.fill_value is not None:
            # A fill value real data also takes (3.0 of a 1..5 score) cannot tell imputed values from real ones.
            described["fill_share"] = float(np.mean(cols[0] == spec.fill_value))
        return cls(spec.name, kind, spec.shape, count, missing, histograms, described, False, spec.fill_value)

    def tally(self, x: np.ndarray) -> Tally:
        """Count a served batch [n, *shape] into the bins, with the rule counts."""
        if self.index_range is not None:
            found = index.count(x, *self.index_range)
            return Tally([found], values=int(np.asarray(x).size), out_of_vocabulary=int(found[-1]))
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
        spread = Moments.of(v.reshape(len(v), -1))
        steps = None
        if "step_std" in self.stats:
            steps = Moments.of(dispersion.steps(_positions(x, len(self.bins))))
        mapped = None
        if "block_mean" in self.stats:
            axes = blocks.spatial(self.shape, len(self.bins))
            mapped = blocks.tally(x, axes, len(self.bins)) if axes is not None else None
        if v.ndim == 1:
            counts = [self.bins[0].count(v)]
            lo, hi = self._lo[0], self._hi[0]
        else:
            counts = [b.count(v[:, c]) for c, b in enumerate(self.bins)]
            lo, hi = self._lo, self._hi
        t = Tally(counts, values=len(v), missing=missing, spread=spread, steps=steps, blocks=mapped)
        t.out_of_range = int(np.count_nonzero((v < lo) | (v > hi)))
        t.total = float(v.sum(dtype=np.float64))
        if self.fill_value is not None and not self.stats.get("fill_share"):
            t.imputed = int(np.count_nonzero(v == self.fill_value))
        return t

    def compare(self, t: Tally, threshold: float) -> Drift:
        """The served tally against training: the distance, and the rule rates."""
        per_channel: tuple[tuple[int, float], ...] | None = None
        shifts = self._shifts(t)
        moved = max((s for s in shifts if not math.isnan(s)), default=math.nan)
        if self._runs is not None:
            run, merged = self._runs
            score = merged.distance(np.bincount(run, weights=t.counts[0], minlength=len(merged.fractions)))[0]
            worst, served = 0, self.bins[0].distance(t.counts[0])[1]
        elif len(self.bins) == 1:
            worst, (score, served) = 0, self.bins[0].distance(t.counts[0])
        else:
            scores = [b.distance(c) for c, b in zip(t.counts, self.bins, strict=True)]
            worst = max(range(len(scores)), key=lambda i: -1.0 if math.isnan(scores[i][0]) else scores[i][0])
            score, served = scores[worst]
            per_channel = self._channels([s for s, _ in scores], t, threshold, shifts)
        numbers = self.kind in ("numeric", "tensor")
        n_values = t.values * (len(self.bins) if numbers else 1)
        some = n_values > 0  # every rate is a count of values over n_values
        watch_imputed = self.fill_value is not None and not self.stats.get("fill_share")
        spread = self._dispersion(t)
        return Drift(
            name=self.name,
            kind=self.kind,
            score=score,
            drifted=score > threshold or spread.score > threshold or moved > threshold,
            values=t.values,
            threshold=threshold,
            channel=worst if len(self.bins) > 1 else None,
            served=served,
            out_of_range=t.out_of_range / n_values if numbers and some else None,
            out_of_vocabulary=t.out_of_vocabulary / n_values if not numbers and self.complete and some else None,
            imputed=t.imputed / n_values if watch_imputed and some else None,
            mean=t.total / n_values if numbers and some and math.isfinite(t.total) else None,
            dispersion=None if math.isnan(spread.score) else spread,
            drifted_channels=per_channel,
            shift=None if math.isnan(moved) else moved,
        )

    def _shifts(self, t: Tally) -> list[float]:
        """Numbers: per channel, how far the served mean moved (`shift`); nothing for strings."""
        if self.kind not in ("numeric", "tensor") or t.spread is None or "mean" not in self.stats:
            return []
        return shift.scores(t.spread, self.stats)

    def _channels(
        self, psis: list[float], t: Tally, threshold: float, shifts: list[float]
    ) -> tuple[tuple[int, float], ...]:
        """A tensor's channels whose PSI, dispersion or shift passes the threshold, each with the largest of them."""
        spreads = [math.nan] * len(psis)
        if t.spread is not None:
            for found_spread in dispersion.channel_scores(t.spread, t.steps, self.stats, True, t.blocks):
                spreads[found_spread.channel or 0] = found_spread.score
        found = []
        for c, pair in enumerate(zip(psis, spreads, shifts or [math.nan] * len(psis), strict=True)):
            known = [s for s in pair if not math.isnan(s)]
            if known and max(known) > threshold:
                found.append((c, max(known)))
        return tuple(found)

    def _dispersion(self, t: Tally) -> Dispersion:
        """The served spread (numbers) or concentration (categories) against training's."""
        if self.kind == "categorical":
            return dispersion.of_categories(t.counts[0], self.bins[0].fractions, self.count)
        if self.kind == "tokens" or t.spread is None:
            return Dispersion(math.nan, "std", None)
        return dispersion.of_numbers(t.spread, t.steps, self.stats, self.kind == "tensor", t.blocks)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "count": self.count}
        out["missing"] = self.missing
        out.update(self.stats)
        if self.kind in ("categorical", "tokens"):
            out["complete"] = self.complete
        if self.fill_value is not None:
            out["fill_value"] = self.fill_value
        if self.index_range is not None:
            out["index_range"] = list(self.index_range)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        out["bins"] = [b.to_dict() for b in self.bins]
        return out

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Reference:
        known = ("mean", "std", "min", "max", "fill_share", "step_std", "block_mean", "block_std")
        stats = {k: d[k] for k in known if k in d}
        span = d.get("index_range")
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
            index_range=(int(span[0]), int(span[1])) if span is not None else None,
            threshold=float(d["threshold"]) if d.get("threshold") is not None else None,
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
    dispersion: Dispersion | None = None  # spread or concentration against training; None when unknown
    # A tensor with channels: every channel over the threshold (by PSI, dispersion or shift) with the largest of them.
    drifted_channels: tuple[tuple[int, float], ...] | None = None
    threshold: float = DEFAULT_THRESHOLD  # what `drifted` was judged against: this feature's calibrated one, or fixed
    shift: float | None = None  # numbers: how far the mean moved, on PSI's scale and unbounded (`shift`)

    @property
    def decision(self) -> float:
        """The largest of the PSI, the dispersion and the shift score (the known ones), NaN when none is: the
        drifted verdict's number, `drifted` being any of them above the threshold."""
        spread = math.nan if self.dispersion is None else self.dispersion.score
        moved = math.nan if self.shift is None else self.shift
        known = [s for s in (self.score, spread, moved) if not math.isnan(s)]
        return max(known) if known else math.nan

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": None if math.isnan(self.score) else round(self.score, 6),
            "drifted": self.drifted,
            "threshold": round(self.threshold, 6),
            "kind": self.kind,
            "values": self.values,
        }
        for key in ("channel", "out_of_range", "out_of_vocabulary", "imputed", "mean"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.dispersion is not None:
            out.update(self.dispersion.to_dict())
        if self.shift is not None:
            out["shift"] = round(self.shift, 6)
        if self.drifted_channels is not None:
            out["drifted_channels"] = [c for c, _ in self.drifted_channels]
        return out


@dataclass(frozen=True)
class DriftReport:
    """A window of served rows (or a whole file) against the baseline."""

    rows: int
    threshold: float | None  # None: each feature's own calibrated threshold (`Drift.threshold`)
    features: dict[str, Drift]
    outputs: dict[str, Drift]

    def drifted_names(self, side: Literal["features", "outputs"] = "features") -> list[str]:
        items = self.features if side == "features" else self.outputs
        return [d.name for d in sorted(items.values(), key=lambda d: -d.score if d.drifted else 0) if d.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "distance": "psi",
            "threshold": "calibrated" if self.threshold is None else self.threshold,
            "features": {n: d.to_dict() for n, d in self.features.items()},
            "outputs": {n: d.to_dict() for n, d in self.outputs.items()},
            "drifted": self.drifted_names("features"),
            "predictions_drifted": self.drifted_names("outputs"),
        }

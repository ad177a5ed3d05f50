"""How spread out served values are, against training: the dispersion check beside PSI's location one.

PSI over quantile bins hardly moves when only the spread changes inside them (sensor noise doubled
moves the pooled histogram by 0.03), so each feature also gets a dispersion score:

- a number: the window's standard deviation against training's, per channel;
- a sequence or an image: also the standard deviation of the step between neighbouring positions
  (along the flattened positions of each example), which sees noise that the pooled values drown
  in the signal's own range;
- a category: its concentration, the chance that two values drawn at random are equal (Simpson's
  index), which sees a window that holds a few of the values training had in its usual proportions.

The score for a ratio r of two variances (or two concentrations) is (r + 1/r) / 2 - 1: the Jeffreys
divergence, of which PSI is the binned estimate, between two normal distributions of one mean whose
variances are in ratio r. So it reads on PSI's scale and the same threshold applies: 0.1 is a
standard deviation 25% above or 20% below training's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# A ratio is clipped to [RATIO_FLOOR, 1 / RATIO_FLOOR]: a constant window (std 0) scores ~5,000, not infinity.
RATIO_FLOOR = 1e-4


@dataclass
class Moments:
    """Count, sum and sum of squares per channel, added up batch by batch: a window's std without its values."""

    n: np.ndarray
    total: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, v: np.ndarray) -> Moments:
        """The moments of finite values [values, channels]."""
        x = v.astype(np.float64, copy=False)
        return cls(np.full(x.shape[1], float(len(x))), x.sum(axis=0), np.einsum("ij,ij->j", x, x))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.squares + other.squares)

    def std(self) -> np.ndarray:
        """The population std per channel (NaN under two values)."""
        # Values past 1e154 (a client's 1e300 within float64's range) square to inf: that std is NaN, not a warning.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mean = self.total / self.n
            var = np.maximum(self.squares / self.n - mean * mean, 0.0)
        return np.where(self.n >= 2, np.sqrt(var), np.nan)


def steps(positions: np.ndarray) -> np.ndarray:
    """[examples, positions, channels] -> the steps between neighbouring positions, [values, channels] (finite ones)."""
    d = np.diff(positions.astype(np.float64, copy=False), axis=1).reshape(-1, positions.shape[-1])
    finite = np.isfinite(d)
    return d if finite.all() else d[finite.all(axis=1)]


def score(ratio: float) -> float:
    """(r + 1/r) / 2 - 1 for a ratio of variances or concentrations: 0 when equal, NaN when unknown."""
    if not math.isfinite(ratio) and not math.isinf(ratio):
        return math.nan
    r = min(max(ratio, RATIO_FLOOR), 1 / RATIO_FLOOR)
    return (r + 1 / r) / 2 - 1


def spread_scores(served_std: np.ndarray, training_std: np.ndarray) -> list[float]:
    """Per channel, the score of the served variance against training's (NaN where training was constant)."""
    served, trained = np.asarray(served_std, dtype=np.float64).tolist(), np.atleast_1d(training_std).tolist()
    pairs = zip(served, trained, strict=True)
    return [math.nan if not t > 0 or math.isnan(s) else score((s / t) ** 2) for s, t in pairs]


def concentration(counts: np.ndarray) -> float:
    """Simpson's index from counts per value: the chance that two values drawn without replacement are equal.

    Drawn without replacement it is unbiased, so a 1,000-row window and 6,000 training rows estimate
    the same thing (the plug-in sum of squared shares is 1/n too high).
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum()
    return float(np.dot(c, c - 1) / (n * (n - 1))) if n >= 2 else math.nan


@dataclass(frozen=True)
class Dispersion:
    """One feature's dispersion score, what it measured, and for a tensor the channel that moved most."""

    score: float
    of: str  # "std", "step_std" (neighbouring positions), "block_mean" (the positional map) or "concentration"
    channel: int | None
    served: float | None = None  # the served std or concentration behind the score

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dispersion": round(self.score, 6), "dispersion_of": self.of}
        if self.channel is not None:
            out["dispersion_channel"] = self.channel
        if self.served is not None:
            out["served_" + self.of] = self.served
        return out


def of_categories(served: np.ndarray, training_fractions: np.ndarray, training_count: int) -> Dispersion:
    """The served concentration against training's, over the same bins."""
    found = concentration(served)
    trained = concentration(np.rint(np.asarray(training_fractions) * training_count))
    ratio = found / trained if trained > 0 else math.nan
    return Dispersion(score(ratio), "concentration", None, None if math.isnan(found) else found)


def channel_scores(
    spread: Moments, steps: Moments | None, stats: Mapping[str, Any], tensor: bool, blocks: Moments | None = None
) -> list[Dispersion]:
    """Per channel, the largest score of the served std, and (sequences, images) of the steps' std and of the
    block means' map (`blocks`)."""
    found: dict[int, Dispersion] = {}

    def keep(c: int, s: float, of: str, served: float) -> None:
        if not math.isnan(s) and (c not in found or s > found[c].score):
            found[c] = Dispersion(s, of, c if tensor else None, served)

    for of, moments in (("std", spread), ("step_std", steps)):
        if moments is None or of not in stats:
            continue
        served = moments.std()
        for c, s in enumerate(spread_scores(served, np.asarray(stats[of], dtype=np.float64))):
            keep(c, s, of, float(served[c]))
    if blocks is not None and "block_mean" in stats:
        from handler.monitoring.blocks import scores  # blocks imports Moments from here

        for c, (s, served_mean) in enumerate(scores(blocks, stats)):
            keep(c, s, "block_mean", served_mean)
    return [found[c] for c in sorted(found)]


def of_numbers(
    spread: Moments, steps: Moments | None, stats: Mapping[str, Any], per_channel: bool, blocks: Moments | None = None
) -> Dispersion:
    """The largest score over the channels, of the served std, the steps' std and the block means' map."""
    found = channel_scores(spread, steps, stats, per_channel, blocks)
    return max(found, key=lambda d: d.score, default=Dispersion(math.nan, "std", None))

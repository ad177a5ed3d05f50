"""How concentrated served values are, against training: the dispersion check beside PSI's location one.

A category's concentration is the chance that two values drawn at random are equal (Simpson's
index). It sees a window that holds a few of the values training had, each in the share the
bins expect of its neighbours: ten item ids spread one per tenth of the id range fill each tenth
as training did, and concentrate the window twenty times over.

The score for a ratio r of two concentrations is (r + 1/r) / 2 - 1: the Jeffreys divergence, of
which PSI is the binned estimate, between two normal distributions of one mean whose variances
are in ratio r. So it reads on PSI's scale and the same threshold applies: 0.1 is a
concentration 56% above or 36% below training's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# A ratio is clipped to [RATIO_FLOOR, 1 / RATIO_FLOOR]: a window of one value scores ~5,000, not infinity.
RATIO_FLOOR = 1e-4


def score(ratio: float) -> float:
    """(r + 1/r) / 2 - 1 for a ratio of variances or concentrations: 0 when equal, NaN when unknown."""
    if not math.isfinite(ratio) and not math.isinf(ratio):
        return math.nan
    r = min(max(ratio, RATIO_FLOOR), 1 / RATIO_FLOOR)
    return (r + 1 / r) / 2 - 1


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
    of: str  # "std", "step_std" (neighbouring positions) or "concentration"
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

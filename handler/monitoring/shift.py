"""How far the served mean moved, in training's units: a score that keeps growing where PSI stops.

PSI counts shares of fixed bins: once every served value is past training's last bin, a shift of 10
standard deviations and one of 1,000 both score the same ~8.3 (the empty bins' floor), so a feature
and the prediction it moved read alike. Beside it each number gets the location half of two normal
distributions' Jeffreys divergence (of which PSI is the binned estimate, and whose spread half is
the dispersion score): (mean_s - mean_t)^2 / 2 * (1/var_t + 1/var_s), per channel. On PSI's scale (a
quarter of a standard deviation scores about 0.06), it has no ceiling: 10 standard deviations score
about 100, 1,000 about a million. Its chance score is about 1/rows, far under PSI's (bins - 1) /
rows, so it adds no false alarm where PSI is calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from handler.monitoring.dispersion import RATIO_FLOOR, Moments


def scores(spread: Moments, stats: Mapping[str, Any]) -> list[float]:
    """Per channel, the served mean's shift score against training's mean and std (NaN where either is unknown)."""
    mean = np.atleast_1d(np.asarray(stats.get("mean", math.nan), dtype=np.float64))
    std = np.atleast_1d(np.asarray(stats.get("std", math.nan), dtype=np.float64))
    served_std = spread.std()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        served_mean = spread.total / spread.n
        trained_var = std * std
        # A constant window (std 0) is as narrow as RATIO_FLOOR lets the dispersion score see: finite, not infinite.
        served_var = np.maximum(served_std * served_std, trained_var * RATIO_FLOOR)
        found = (served_mean - mean) ** 2 / 2 * (1 / trained_var + 1 / served_var)
    return [s if math.isfinite(s) and t > 0 else math.nan for s, t in zip(found.tolist(), std.tolist(), strict=True)]

"""Each feature's drift threshold, calibrated at export from bootstrap windows of held-out or training rows.

One fixed threshold fits no feature well: a window's chance score depends on the feature's bins, its
channels and its spread (a scalar's fresh windows score up to ~0.04 at 1,000 rows, a token
feature's ~0.005). So the export draws `draws` windows of `window` rows (DRIFT_WINDOW) with
replacement from held-out rows (`source` "held_out": rows the model was not trained on), or from the
training rows when it has none; scores each the way the drift watch does (the largest of PSI, the
dispersion and the shift score); and records per feature the score a window passes by chance with probability
false_alarm_rate / features (and alike for the outputs), so that a window of fresh data raises a
false alarm on some feature at most at `false_alarm_rate`.

Held-out rows matter for the outputs: a model answers its own training rows a little differently
from new ones (it fitted them), so new data's predictions sit a little away from the training
predictions the bins describe. Windows of training rows cannot see that gap; windows of held-out
rows score it as served data will.

That tail is past what 200 draws see, so it is read from two curves fitted to them, and the larger
kept: a scaled chi-square with the draws' mean and variance (PSI and the Jeffreys score are both
about chi-square over the rows), at the Wilson-Hilferty approximation of its quantile; and an
exponential fitted to how far the top fifth of the draws pass the fifth's lowest. The chi-square
reads a single statistic's tail well; the largest of several (a softmax's ten channels, each with
PSI, dispersion and shift) has a longer one, which the moments miss and the exponential sees: on the
digits' output the chi-square alone put the 0.1% tail at 0.062, where 3 of 500 fresh windows
scored more (the exponential: 0.069, over all 500).

A served window differs from the training bins by its own sampling (~1/rows) and by the training
sample's (the bins were fitted on N rows, ~1/N), so a window of `rows` gets the threshold times
(1/rows + 1/N) / (1/window + 1/N) (`scaled`): a small file is judged leniently, a large one closely.
A bootstrap window of the training rows differs from their bins by its own sampling only (1/window),
so its threshold is scaled by window * (1/rows + 1/N) instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from handler.monitoring.baseline import Baseline
    from handler.monitoring.drift import Reference

DEFAULT_FALSE_ALARM_RATE = 0.001  # per window and side (features, predictions): a window each 1,000 rows
DRAWS = 200
# A feature training holds constant scores 0 in every draw: any change to it is drift, rounding is not.
MIN_THRESHOLD = 1e-3
TOP = 0.2  # the share of the draws the exponential tail is fitted to


@dataclass(frozen=True)
class Calibration:
    """How the baseline's per-feature thresholds were found, and what scales them to a window's rows."""

    window: int  # rows per bootstrap window
    false_alarm_rate: float  # per window, for the features together (and the outputs together)
    draws: int
    training_rows: int
    source: Literal["held_out", "training"]  # the rows the windows were drawn from
    source_rows: int

    def scaled(self, threshold: float, rows: float) -> float:
        """A threshold calibrated at `window` rows, for a window of `rows` (see the module's docstring)."""
        if rows <= 0:
            return math.inf
        served = 1 / rows + 1 / self.training_rows
        drawn = 1 / self.window + (1 / self.training_rows if self.source == "held_out" else 0.0)
        return threshold * served / drawn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        source = d.get("source")
        if source not in ("held_out", "training"):
            raise ValueError(f"calibration source {source!r}: 'held_out' or 'training'")
        return cls(
            int(d["window"]),
            float(d["false_alarm_rate"]),
            int(d["draws"]),
            int(d["training_rows"]),
            source,
            int(d["source_rows"]),
        )


def tail(scores: np.ndarray, p: float) -> float:
    """The score passed with probability `p`: the larger of two readings of the draws' tail (see the docstring)."""
    s = scores[np.isfinite(scores)]
    if s.size < 10 or float(s.mean()) <= 0:
        return MIN_THRESHOLD
    return max(_chi_square_tail(s, p), _exponential_tail(s, p), MIN_THRESHOLD)


def _chi_square_tail(s: np.ndarray, p: float) -> float:
    """A scaled chi-square with the scores' mean and variance, at Wilson-Hilferty's quantile."""
    mean, var = float(s.mean()), float(s.var(ddof=1))
    if var <= 0:
        return mean * 2
    scale, dof = var / (2 * mean), 2 * mean * mean / var
    z = NormalDist().inv_cdf(1 - p)
    h = 2 / (9 * dof)
    return scale * dof * max(1 - h + z * math.sqrt(h), 0.0) ** 3


def _exponential_tail(s: np.ndarray, p: float, top: float = TOP) -> float:
    """An exponential fitted to how far the top `top` of the scores pass their (1 - top) quantile."""
    u = float(np.quantile(s, 1 - top))
    excess = s[s > u] - u
    if excess.size == 0 or p >= top:
        return u
    return u + float(excess.mean()) * math.log(top / p)


def calibrate(
    baseline: Baseline,
    columns: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
    window: int,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    held_out: bool = False,
    draws: int = DRAWS,
    seed: int = 0,
) -> Baseline:
    """The baseline with each feature's and output's threshold for a window of `window` rows, drawn from `columns`
    and the model's `predictions` for them: held-out rows (`held_out`) or the training rows themselves."""
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"the false-alarm rate must be between 0 and 1, got {false_alarm_rate}")
    if window < 1:
        raise ValueError(f"the drift window must be at least one row, got {window}")
    rng = np.random.default_rng(seed)
    n = len(next(iter(columns.values())))
    scores: dict[str, list[float]] = {}
    for _ in range(draws):
        rows = rng.integers(0, n, size=window)
        tallies = baseline.tally({k: v[rows] for k, v in columns.items()}, {k: v[rows] for k, v in predictions.items()})
        report = baseline.compare(tallies, window, math.inf)
        for prefix, drifts in (("features", report.features), ("outputs", report.outputs)):
            for name, d in drifts.items():
                scores.setdefault(f"{prefix}/{name}", []).append(d.decision)

    def thresholds(refs: dict[str, Reference], prefix: str) -> dict[str, Reference]:
        p = false_alarm_rate / max(len(refs), 1)
        return {
            name: replace(ref, threshold=tail(np.array(scores[f"{prefix}/{name}"]), p)) for name, ref in refs.items()
        }

    return replace(
        baseline,
        features=thresholds(baseline.features, "features"),
        outputs=thresholds(baseline.outputs, "outputs"),
        calibration=Calibration(
            window, false_alarm_rate, draws, baseline.rows, "held_out" if held_out else "training", n
        ),
    )

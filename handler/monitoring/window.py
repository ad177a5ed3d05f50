"""The drift watch of one serving container: served batches counted into the baseline's bins, window by window.

`Service.run` hands every batch it served to `DriftMonitor.observe`, whatever the trigger (HTTP,
direct, SQS, S3 chunks). `observe` keeps references only; every `window` rows the window is
binned at once and the report goes to a callback the adapter layer sets (EMF metrics there:
the core knows no Powertools).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import DriftReport

if TYPE_CHECKING:
    from handler.core.service import Prediction

log = logging.getLogger("skewless.drift")

DEFAULT_WINDOW = 1000


class DriftMonitor:
    """Counts served batches into the baseline's bins; every `window` rows, hands a DriftReport to `on_report`.

    `observe` only keeps references (a few microseconds); the binning runs once per window: a window
    closes at the first batch that brings it to `window` rows or more. It bins every row up to twice
    `window`; past that (an S3 chunk of thousands of rows, a large batch) it bins twice `window` rows spread
    evenly over the window, so a bulk job pays for its drift watch per window, not per row. `threshold`
    None judges each feature by its calibrated threshold, scaled to the rows binned (`calibration`).
    A monitoring fault is logged and the window dropped: it never fails a prediction.
    """

    def __init__(
        self,
        baseline: Baseline,
        window: int = DEFAULT_WINDOW,
        threshold: float | None = None,
        on_report: Callable[[DriftReport], None] | None = None,
    ) -> None:
        self.baseline, self.window, self.threshold = baseline, window, threshold
        self.on_report = on_report
        self.reports = 0
        self._pending: list[tuple[Mapping[str, np.ndarray], Prediction]] = []
        self._rows = 0
        self._lock = threading.Lock()

    def observe(self, columns: Mapping[str, np.ndarray], prediction: Prediction) -> None:
        """One served batch: its coerced features and its Prediction (outputs, rows without an answer)."""
        with self._lock:
            self._pending.append((columns, prediction))
            self._rows += len(next(iter(columns.values())))
            if self._rows < self.window:
                return
            pending, rows, self._pending, self._rows = self._pending, self._rows, [], 0
        try:
            report = self.report(pending, rows)
            self.reports += 1
            if self.on_report is not None:
                self.on_report(report)
        except Exception:  # a monitoring fault must not fail the prediction that closed the window
            log.exception("drift window of %d rows dropped: it could not be binned or reported", rows)

    def report(self, pending: list[tuple[Mapping[str, np.ndarray], Prediction]], rows: int) -> DriftReport:
        """Bin the pending batches at once (one numpy call per feature, not per batch)."""
        cap = 2 * self.window
        columns = {name: _concat([cols[name] for cols, _ in pending]) for name in self.baseline.features}
        if rows > cap and all(len(c) == rows for c in columns.values()):
            keep = _spread(rows, cap)
            columns = {name: c[keep] for name, c in columns.items()}
        outputs = {}
        for name in self.baseline.outputs:
            parts = [a for a in (_answered(p, name) for _, p in pending) if a is not None]
            if parts:
                answered = _concat(parts)
                outputs[name] = answered[_spread(len(answered), cap)] if len(answered) > cap else answered
        tallies = self.baseline.tally(columns, outputs)
        return self.baseline.compare(tallies, rows, self.threshold)


def _spread(n: int, k: int) -> np.ndarray:
    """`k` of `n` row positions (k <= n), evenly spaced from the first to the last, each once."""
    # Steps of (n - 1) / (k - 1) >= 1 keep truncated positions strictly increasing.
    return np.linspace(0, n - 1, k).astype(np.intp)


def _answered(prediction: Prediction, name: str) -> np.ndarray | None:
    """The output's rows that were answered (a row refused for its input or its NaN output is left out)."""
    out: np.ndarray | None = prediction.outputs.get(name)
    if out is None or not (prediction.input_problems or prediction.output_problems):
        return out
    keep = np.ones(len(out), dtype=bool)
    keep[[*prediction.input_problems, *prediction.output_problems]] = False
    return out[keep]


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    try:
        return np.concatenate(parts)
    except ValueError:  # examples of other shapes under a free dimension: their values, channel by channel
        return np.concatenate([p.reshape(-1, p.shape[-1] if p.ndim > 1 else 1) for p in parts])

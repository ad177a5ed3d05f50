"""`baseline.json`: the training distribution of every raw feature and every output, and a batch against it.

The export fits it (`Baseline.fit`), the server's drift watch and the offline report count served
rows into its bins (`tally`) and compare the counts with training (`compare`). The statistics
themselves live in `handler.monitoring.drift`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.signature import TensorSpec
from handler.monitoring.calibration import Calibration
from handler.monitoring.dispersion import Moments
from handler.monitoring.drift import BINS, DEFAULT_THRESHOLD, Drift, DriftReport, Reference, Tally

BASELINE_FORMAT = 1


@dataclass(frozen=True)
class Baseline:
    """`baseline.json`: the training distribution of every raw feature and every output."""

    rows: int
    features: dict[str, Reference]
    outputs: dict[str, Reference]
    calibration: Calibration | None = None  # how each Reference's threshold was found (`calibration`)

    @classmethod
    def fit(
        cls,
        features: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        data: Mapping[str, np.ndarray],
        predictions: Mapping[str, np.ndarray],
    ) -> Baseline:
        rows = len(next(iter(data.values())))
        return cls(
            rows=rows,
            features={f.name: Reference.fit(f, data[f.name]) for f in features},
            outputs={o.name: Reference.fit(o, predictions[o.name]) for o in outputs},
        )

    def tally(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray] | None) -> dict[str, Tally]:
        """Bin counts of a batch, keyed "features/NAME" and "outputs/NAME" (outputs only when given)."""
        out = self._scalar_tallies(columns)
        out.update(
            {f"features/{n}": ref.tally(columns[n]) for n, ref in self.features.items() if n not in self._scalars}
        )
        if outputs is not None:
            out.update({f"outputs/{n}": ref.tally(outputs[n]) for n, ref in self.outputs.items() if n in outputs})
        return out

    @cached_property
    def _scalars(self) -> dict[str, Reference]:
        """The scalar number features, binned together: one matrix, one numpy call per rule for all of them."""
        return {n: r for n, r in self.features.items() if r.kind == "numeric"}

    @cached_property
    def _scalar_edges(self) -> np.ndarray:
        """Every scalar feature's cut points, one row each, padded with +inf (no finite value reaches it)."""
        refs = list(self._scalars.values())
        width = max(len(r.bins[0].edges) for r in refs)  # type: ignore[arg-type]
        edges = np.full((len(refs), width), np.inf)
        for j, r in enumerate(refs):
            edges[j, : len(r.bins[0].edges)] = r.bins[0].edges  # type: ignore[arg-type]
        return edges

    @cached_property
    def _scalar_rules(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        refs = list(self._scalars.values())
        fills = [r.fill_value if r.fill_value is not None and not r.stats.get("fill_share") else np.nan for r in refs]
        column = (len(refs), 1)
        return (
            np.array([r.stats["min"] for r in refs]).reshape(column),
            np.array([r.stats["max"] for r in refs]).reshape(column),
            np.array(fills, dtype=np.float64).reshape(column),
        )

    def _scalar_tallies(self, columns: Mapping[str, np.ndarray]) -> dict[str, Tally]:
        names = list(self._scalars)
        if not names:
            return {}
        x = np.stack([columns[n] for n in names]).astype(np.float64, copy=False)  # [features, rows]
        if not np.isfinite(x).all():  # never at serving (coercion refuses NaN); a file may hold some
            return {f"features/{n}": self._scalars[n].tally(columns[n]) for n in names}
        lo, hi, fills = self._scalar_rules
        out_of_range = np.count_nonzero((x < lo) | (x > hi), axis=1).tolist()
        imputed = np.count_nonzero(x == fills, axis=1).tolist()
        totals = x.sum(axis=1).tolist()
        squares = np.einsum("ij,ij->i", x, x).tolist()  # for the served std (`dispersion`)
        counts = _bin_rows(x, self._scalar_edges)
        out = {}
        for j, (name, ref) in enumerate(self._scalars.items()):
            bins = counts[j, : len(ref.bins[0].fractions)]
            t = Tally([bins], values=x.shape[1], out_of_range=out_of_range[j], imputed=imputed[j])
            t.total = totals[j]
            t.spread = Moments(np.array([x.shape[1]], float), np.array([totals[j]]), np.array([squares[j]]))
            out[f"features/{name}"] = t
        return out

    def compare(self, tallies: Mapping[str, Tally], rows: int, threshold: float | None = None) -> DriftReport:
        """The tallies against training: with `threshold` None, each feature's calibrated threshold, scaled to the
        rows it counted (DEFAULT_THRESHOLD for a baseline exported before calibration); otherwise that one."""

        def judged(ref: Reference, t: Tally) -> float:
            if threshold is not None:
                return threshold
            if ref.threshold is None or self.calibration is None:
                return DEFAULT_THRESHOLD
            # A tally counts values; training had ref.count of them over self.rows rows.
            return self.calibration.scaled(ref.threshold, t.values * self.rows / max(ref.count, 1))

        def side(refs: dict[str, Reference], prefix: str) -> dict[str, Drift]:
            keys = {n: f"{prefix}/{n}" for n in refs}
            return {
                n: r.compare(tallies[keys[n]], judged(r, tallies[keys[n]]))
                for n, r in refs.items()
                if keys[n] in tallies
            }

        fixed = threshold if threshold is not None or self.calibration is not None else DEFAULT_THRESHOLD
        return DriftReport(rows, fixed, side(self.features, "features"), side(self.outputs, "outputs"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "rows": self.rows,
            "bins": BINS,
            "distance": "psi",
            "features": {n: r.to_dict() for n, r in self.features.items()},
            "outputs": {n: r.to_dict() for n, r in self.outputs.items()},
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baseline:
        if d.get("format") != BASELINE_FORMAT:
            raise ValueError(f"baseline format {d.get('format')!r}, this version reads format {BASELINE_FORMAT}")
        return cls(
            rows=int(d["rows"]),
            features={n: Reference.from_dict(n, r) for n, r in d["features"].items()},
            outputs={n: Reference.from_dict(n, r) for n, r in d["outputs"].items()},
            calibration=Calibration.from_dict(d["calibration"]) if d.get("calibration") else None,
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Baseline:
        return cls.from_dict(json.loads(path.read_text()))


def _bin_rows(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin counts of each row of finite `x` [features, n] over its row of `edges`: as `searchsorted(side="right")`.

    A bin index is the number of cut points at or below the value, counted one cut point at a time over
    all features at once in a small integer (each feature's bins offset past the previous one's), and one
    bincount serves every feature: with ten bins ~5x cheaper than a binary search per value at 8k rows
    (whose branches the CPU cannot predict), and no dearer at 1k.
    """
    features, width = edges.shape
    total = features * (width + 1)
    if total > 1 << 16:  # too many bins for the counter: binned per feature
        return np.stack(
            [
                np.bincount(np.searchsorted(e, row, side="right"), minlength=width + 1)
                for e, row in zip(edges, x, strict=True)
            ]
        )
    kind = np.uint8 if total <= 1 << 8 else np.uint16
    index = np.repeat((np.arange(features) * (width + 1)).astype(kind)[:, None], x.shape[1], axis=1)
    above = np.empty(x.shape, dtype=bool)
    ones = above.view(np.uint8)
    for k in range(width):
        np.greater_equal(x, edges[:, k : k + 1], out=above)
        index += ones
    return np.bincount(index.ravel(), minlength=total).reshape(features, width + 1)

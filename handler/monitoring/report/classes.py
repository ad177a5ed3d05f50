"""A classifier's outputs by class, for the offline report: each class's mean share and the rows it tops.

A softmax's values average 1/k whatever the traffic, so the drift report's one "mean" over them says
nothing. Per class, the served mean share beside training's (the baseline keeps a mean per score) and
how many rows each class tops say which classes the traffic moved to.

The classes are the manifest's `class_names` (export_model(..., class_names=...), one per score, or two
for a single sigmoid score); without them, an output of 2 to 16 scores whose every served row is a
probability vector (in [0, 1], summing to 1) is named by index ("0", "1", ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.monitoring.drift import MAX_CHANNELS, Reference

# A softmax in float32 sums to 1 within a few ulps per score; this leaves room and still refuses logits.
SUM_TOLERANCE = 1e-3


@dataclass
class ClassTally:
    """One output's served scores summed per class, and the rows each class topped."""

    sums: np.ndarray
    top: np.ndarray
    rows: int = 0
    probabilities: bool = True  # every row so far was a probability vector

    @classmethod
    def empty(cls, width: int) -> ClassTally:
        return cls(np.zeros(width, dtype=np.float64), np.zeros(width, dtype=np.int64))

    def add(self, scores: np.ndarray) -> None:
        """Count a batch of one output's answers, [rows, width] (a single sigmoid score: [rows] or [rows, 1])."""
        s = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
        s = s[np.isfinite(s).all(axis=1)]  # a NaN answer is no answer (as the drift tally leaves it out)
        if s.shape[1] == 1:
            s = np.concatenate([1.0 - s, s], axis=1)  # a sigmoid's score is the second class's share
        elif len(s):
            sums = s.sum(axis=1)
            self.probabilities &= bool(((s >= 0) & (s <= 1)).all() and np.abs(sums - 1.0).max() <= SUM_TOLERANCE)
        if s.shape[1] != len(self.sums):
            return
        self.sums += s.sum(axis=0)
        self.top += np.bincount(s.argmax(axis=1), minlength=len(self.sums))
        self.rows += len(s)


@dataclass(frozen=True)
class ClassShare:
    """One class of one output: its mean share served and in training, and the rows it topped."""

    name: str
    mean_share: float
    training_mean_share: float | None
    top_rows: int
    top_share: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean_share": round(self.mean_share, 6)}
        if self.training_mean_share is not None:
            out["training_mean_share"] = round(self.training_mean_share, 6)
        out.update(top_rows=self.top_rows, top_share=round(self.top_share, 6))
        return out


def watched(manifest: Mapping[str, Any], outputs: Mapping[str, Reference]) -> dict[str, tuple[tuple[str, ...], bool]]:
    """The outputs to break down by class: {output: (class names, named by the manifest)}."""
    listed = manifest.get("class_names")
    names = tuple(str(n) for n in listed) if isinstance(listed, list) and listed else ()
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    for name, ref in outputs.items():
        width = _width(ref.shape)
        if names and len(outputs) == 1 and (width == len(names) or (width == 1 and len(names) == 2)):
            out[name] = (names, True)
        elif not names and width is not None and 2 <= width <= MAX_CHANNELS:
            out[name] = (tuple(str(i) for i in range(width)), False)
    return out


def _width(shape: Sequence[int | None]) -> int | None:
    """Scores per row: the product of the output's dimensions, None when one is free."""
    width = 1
    for dim in shape:
        if dim is None:
            return None
        width *= dim
    return width


def shares(tally: ClassTally, names: Sequence[str], ref: Reference, from_manifest: bool) -> list[ClassShare] | None:
    """Each class's shares, in class order; None when nothing was counted, or (unnamed) a row was no probability."""
    if not tally.rows or not (from_manifest or tally.probabilities):
        return None
    means = ref.stats.get("mean")
    if isinstance(means, list) and len(means) == 1:
        means = means[0]  # an output of shape [1] is described as one channel
    training: list[float | None]
    if isinstance(means, list) and len(means) == len(names):
        training = [float(m) for m in means]
    elif isinstance(means, int | float) and len(names) == 2:  # a single sigmoid score: its mean is class 1's
        training = [1.0 - float(means), float(means)]
    else:
        training = [None] * len(names)
    return [
        ClassShare(
            n, float(tally.sums[i] / tally.rows), training[i], int(tally.top[i]), float(tally.top[i] / tally.rows)
        )
        for i, n in enumerate(names)
    ]

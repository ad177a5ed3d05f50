"""Where in an image or a sequence the values sit: a coarse positional map beside the pooled statistics.

The pooled histogram and stds of a tensor's channel do not see a digit moved 4 pixels to the side:
its pixels keep their values, only their places change. So each example's image is cut in a grid of
GRID x GRID blocks (a sequence in SEGMENTS runs of steps), each block's mean taken per channel, and
the baseline records, per block and channel, the training mean of those block means and their std
across examples (`block_mean`, `block_std`).

A window is scored per channel by the Jeffreys divergence between two normal distributions of the
block means (blocks taken as independent, of training's stds) whose means are the training one and
the served one: the sum over blocks of d^2, d being the served block mean's difference from training's
in training stds. A window's mean carries sampling noise of 1/n of a variance per block, so B/n (B
blocks, n examples) is taken off: what is left estimates the divergence itself, ~0 for a fresh window
(docs/drift.md gives the measurements). So it reads on PSI's scale and the same threshold applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from handler.monitoring.dispersion import Moments

GRID = 4  # an image: GRID x GRID blocks over its first two axes
SEGMENTS = 8  # a sequence: runs of neighbouring steps
# A block whose training std is tiny (always-dark corners) is scored against this share of the channel's std.
STD_FLOOR = 0.1


def spatial(shape: Sequence[int | None], channels: int) -> tuple[int, ...] | None:
    """The positional axes of a tensor of `shape` (the last axis is its channels when it has `channels`), or None
    when it has fewer than two positions or a free dimension."""
    axes = tuple(shape[:-1]) if shape and shape[-1] == channels else tuple(shape)
    if not axes or any(a is None for a in axes):
        return None
    known = tuple(int(a) for a in axes if a is not None)
    return known if math.prod(known) > 1 else None


def _starts(length: int, parts: int) -> np.ndarray:
    """Where each of `parts` near-equal runs of `length` begins."""
    return np.array([p[0] for p in np.array_split(np.arange(length), min(parts, length))], dtype=np.intp)


def means(x: np.ndarray, axes: tuple[int, ...], channels: int) -> np.ndarray:
    """A batch [n, *shape] -> each example's block means [n, blocks * channels] (block-major)."""
    v = np.asarray(x, dtype=np.float64).reshape(len(x), *axes, channels)
    if len(axes) == 1:
        starts = _starts(axes[0], SEGMENTS)
        sums = np.add.reduceat(v, starts, axis=1)
        sizes = np.diff(np.append(starts, axes[0]))[None, :, None]
    else:
        v = v.reshape(len(x), axes[0], axes[1], -1, channels).sum(axis=3) / (
            v[0].size // (axes[0] * axes[1] * channels)
        )
        rows, cols = _starts(axes[0], GRID), _starts(axes[1], GRID)
        sums = np.add.reduceat(np.add.reduceat(v, rows, axis=1), cols, axis=2).reshape(len(x), -1, channels)
        heights, widths = np.diff(np.append(rows, axes[0])), np.diff(np.append(cols, axes[1]))
        sizes = np.outer(heights, widths).reshape(1, -1, 1)
    return (sums / sizes).reshape(len(x), -1)


def fit(x: np.ndarray, axes: tuple[int, ...], channels: int) -> dict[str, Any]:
    """The baseline's map: per block (rows) and channel (columns), training's mean block mean and its std."""
    found = means(x, axes, channels)
    found = found[np.isfinite(found).all(axis=1)]
    shape = (-1, channels)
    return {
        "block_mean": found.mean(axis=0).reshape(shape).tolist(),
        "block_std": found.std(axis=0).reshape(shape).tolist(),
    }


def tally(x: np.ndarray, axes: tuple[int, ...], channels: int) -> Moments:
    """A served batch's block means, summed (finite examples only)."""
    found = means(x, axes, channels)
    finite = np.isfinite(found).all(axis=1)
    return Moments.of(found if finite.all() else found[finite])


def scores(served: Moments, stats: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Per channel: the divergence of the served block means from training's, and the served mean of the block
    that moved most (in training stds)."""
    trained = np.asarray(stats["block_mean"], dtype=np.float64)
    blocks, channels = trained.shape
    floor = STD_FLOOR * np.asarray(stats["std"], dtype=np.float64).reshape(1, channels)
    spread = np.maximum(np.asarray(stats["block_std"], dtype=np.float64), floor)
    n = float(served.n[0]) if len(served.n) else 0.0
    if n < 2:
        return [(math.nan, math.nan)] * channels
    found = (served.total / n).reshape(blocks, channels)
    d2 = ((found - trained) / np.where(spread > 0, spread, np.nan)) ** 2
    out = []
    for c in range(channels):
        column = d2[:, c]
        if not np.isfinite(column).all():
            out.append((math.nan, math.nan))
            continue
        worst = int(np.argmax(column))
        out.append((max(float(column.sum()) - blocks / n, 0.0), float(found[worst, c])))
    return out

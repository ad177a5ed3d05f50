"""Index inputs (an `Embedding`'s ids, a class id): binned as categories over the range the signature records.

An integer input whose `index_range` holds at most MAX_INDEX_VALUES values (a scalar id, or a
sequence of them: an Embedding's token ids) gets one bin per value of the range, over every position,
then one for anything outside it, instead of ten quantile bins: an id is a
name, not a quantity, so ten ids spread one per decile fill the deciles as training did, and only
bins per value (through their concentration, `dispersion.concentration`) see that the window holds
ten ids where training had two hundred.

The cut: up to 1,000 values the baseline lists a bin per value (a few tens of KB of JSON) and the
served ids are counted with one `bincount`; a wider range (a hashed id, a count, a timestamp) is
better described by its quantiles, and keeps them.

PSI is taken over the per-value bins merged into about BINS runs of neighbouring ids (`groups`):
per id, with 200 ids at 1,000 rows, sampling noise alone gives ~0.25 ((bins - 1) / rows), above
the 0.1 threshold; over ten runs it is ~0.01, as for any decile-binned number.
"""

from __future__ import annotations

import numpy as np

MAX_INDEX_VALUES = 1000


def is_small_range(index_range: tuple[int, int] | None) -> bool:
    """True for an index whose recorded range [lo, hi) is small enough to bin per value."""
    return index_range is not None and 0 < index_range[1] - index_range[0] <= MAX_INDEX_VALUES


def count(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """How many values are each id of [lo, hi), then how many are not (outside it, or not a whole number).

    17, 17.0 and "17" are all id 17: served ids arrive as ints, an offline file's as floats or text.
    """
    k = hi - lo
    v = np.asarray(x).ravel()
    if v.dtype.kind not in "iuf":
        v = np.array([_number(s) for s in v.tolist()], dtype=np.float64)
    if v.dtype.kind == "f":
        whole = np.isfinite(v) & (v == np.floor(v))
        v = np.where(whole, v, lo - 1.0)  # anything not a whole number lands in the last bin, with the ids outside
    ids = v.astype(np.int64) - lo
    inside = (ids >= 0) & (ids < k)
    return np.bincount(np.where(inside, ids, k), minlength=k + 1)


def _number(v: object) -> float:
    try:
        return float(v.decode() if isinstance(v, bytes) else v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def groups(fractions: np.ndarray, bins: int) -> np.ndarray:
    """Each per-value bin's run of neighbouring ids, about 1/bins of training each; the last bin (the rest) its own.

    A run closes once it holds its share of training, so ids training never had join their neighbours.
    """
    ids = np.asarray(fractions[:-1], dtype=np.float64)
    cumulative = np.cumsum(ids) / max(ids.sum(), 1e-12)
    run = np.minimum(np.ceil(cumulative * bins - 1e-9).astype(np.int64) - 1, bins - 1)
    run = np.maximum.accumulate(np.maximum(run, 0))
    _, dense = np.unique(run, return_inverse=True)  # runs no id closed are dropped
    return np.append(dense, dense.max() + 1 if len(dense) else 0)

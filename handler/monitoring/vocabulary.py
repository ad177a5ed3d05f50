"""The out-of-vocabulary rate of a token sequence over its real tokens: padding ("") is no word.

The drift statistics (`drift.Reference.compare`) count a token tensor's unknown tokens over every
slot, padding included, so reviews padded to a fixed length read 31.5% new words where 45.7% of
the words written were new. Both the offline report and the function's EMF lines rescale it here,
from what the window already holds: with `p` the served share of the padding token (its own bin,
as training padded too), unknown / (all - padding) = rate / (1 - p).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from handler.monitoring.drift import Drift, DriftReport, Reference

PADDING = ""


def real_token_rate(drift: Drift, ref: Reference) -> float | None:
    """The share of the served real tokens that training never had; None when every served token was padding."""
    rate, values = drift.out_of_vocabulary, ref.bins[0].values or ()
    if drift.kind != "tokens" or rate is None or PADDING not in values or len(drift.served) != len(values) + 1:
        return rate  # a scalar string's "" is a value like any other; a tensor training never padded has no padding
    padding = drift.served[values.index(PADDING)]
    if padding >= 1.0:
        return None
    return min(rate / (1.0 - padding), 1.0)  # min: a rounding step past 1 when nearly all of it is padding


def over_real_tokens(report: DriftReport, refs: Mapping[str, Reference]) -> DriftReport:
    """The report with each token feature's out-of-vocabulary rate over its real tokens."""
    features = {
        name: replace(d, out_of_vocabulary=real_token_rate(d, refs[name])) if d.kind == "tokens" and name in refs else d
        for name, d in report.features.items()
    }
    return replace(report, features=features)

"""The drift report as one self-contained HTML page: a small plot per feature, training against served.

No script, no stylesheet or font from elsewhere: inline SVG bar charts (training grey, served
blue, or red when the feature drifted), drifted features first, then by distance. Bar heights
are the square root of each bin's share (a dominant bin, like the padding token or black pixels,
would flatten the rest); each bar has a tooltip with its bin and both shares.

A feature drifts on its PSI or on its dispersion score, so each caption gives both, and for the
dispersion what it measured in training and served (std, the steps' std, or the concentration);
the badge names the statistic that passed the threshold, and a tensor's caption lists every channel that
did (by either, with the larger score). A category of more than MAX_BARS values
(an index input's 200 ids, a vocabulary's top 100) draws the others summed in one bar, then its
TOP_BARS values with the largest share on either side, then the rest: 201 bars of a pixel are not read.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from handler.monitoring.dispersion import concentration
from handler.monitoring.drift import Drift, Reference
from handler.monitoring.report.classes import ClassShare
from handler.monitoring.report.outcome import Outcome

WIDTH, HEIGHT, PAD_BOTTOM, PAD_TOP = 340, 150, 34, 8
TRAINING, SERVED, DRIFTED = "#9aa0a6", "#1a73e8", "#d93025"
MAX_BARS, TOP_BARS = 24, 12
# What each dispersion measured, as the caption says it.
MEASURED = {"std": "std", "step_std": "std of the steps", "block_mean": "block means", "concentration": "concentration"}

STYLE = (
    """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#202124;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.summary{color:#5f6368;margin:0 0 8px}.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;padding:8px;border:1px solid #dadce0;border-radius:6px;width:"""
    + str(WIDTH)
    + """px}
figure.drifted{border-color:#d93025;background:#fce8e6}
figcaption{font-size:13px;margin-bottom:4px}.name{font-weight:600}.badge{color:#fff;background:#d93025;
border-radius:3px;padding:0 4px;font-size:11px;margin-left:4px}.rates,.threshold,.shift{color:#5f6368;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.legend span:first-child{margin-left:0}
table.classes{border-collapse:collapse;font-size:12px;margin-top:6px;width:100%}
.classes th,.classes td{padding:1px 4px;text-align:right}
.classes th:first-child,.classes td:first-child{text-align:left}
"""
)


def page_start(title: str, style: str) -> list[str]:
    """A self-contained page's head and heading (the drift and the quality pages): `title` is escaped already."""
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',  # no favicon request, so no console error for it
        f"<title>{title}</title><style>{style}</style></head><body>",
        f"<h1>{title}</h1>",
    ]


def render(outcome: Outcome) -> str:
    """The whole page for one report."""
    report, baseline = outcome.report, outcome.baseline
    title = f"Drift report: {escape(outcome.model)} v{escape(outcome.version)}"
    parts = [
        *page_start(title, STYLE),
        f'<p class="summary">{escape(outcome.source)}: {report.rows} rows read, {outcome.rejected_rows} rejected. '
        "Distance: population stability index (PSI) over the training bins, and beside it a dispersion score "
        "(the std's or the concentration's change, on PSI's scale); "
        f"drifted when either is above {_threshold_said(report.threshold)}.</p>",
        f'<p id="verdict">{verdict(outcome)}</p>',
        f'<p class="legend"><span style="background:{TRAINING}"></span>training'
        f'<span style="background:{SERVED}"></span>served<span style="background:{DRIFTED}"></span>served, drifted. '
        "Bar heights are the square root of each bin's share, so that small bins stay visible.</p>",
        "<h2>Features</h2>",
        _grid(report.features, baseline.features, "feature-plot"),
    ]
    if report.outputs:
        grid = _grid(report.outputs, baseline.outputs, "output-plot", outcome.classes)
        parts += ["<h2>Predictions</h2>", grid]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def verdict(outcome: Outcome) -> str:
    """The headline: what drifted, features and predictions both (the exit status counts both)."""
    features, outputs = outcome.report.drifted_names(), outcome.report.drifted_names("outputs")
    if not features and not outputs:
        unread = "" if outcome.report.outputs else " No prediction was read (only data capture records carry them)."
        return "<strong>Nothing drifted.</strong>" + unread
    said = [
        f"<strong>{len(names)} {what}{'s' if len(names) > 1 else ''} drifted:</strong> {escape(', '.join(names))}."
        for names, what in ((features, "feature"), (outputs, "prediction"))
        if names
    ]
    if not features:
        said.insert(0, "No feature drifted;")
    return " ".join(said)


def _order(drifts: dict[str, Drift]) -> list[Drift]:
    def key(d: Drift) -> tuple[int, float]:
        return (0 if d.drifted else 1, -(d.score if not math.isnan(d.score) else -1.0))

    return sorted(drifts.values(), key=key)


def _grid(
    drifts: dict[str, Drift],
    refs: dict[str, Reference],
    css: str,
    classes: dict[str, list[ClassShare]] | None = None,
) -> str:
    found = classes or {}
    figures = (_figure(d, refs[d.name], css, found.get(d.name)) for d in _order(drifts))
    return '<div class="grid">' + "".join(figures) + "</div>"


def _figure(d: Drift, ref: Reference, css: str, classes: list[ClassShare] | None = None) -> str:
    score = "no value served" if math.isnan(d.score) else f"PSI {d.score:.3f}"
    where = f", channel {d.channel}" if d.channel is not None else ""
    if classes and d.channel is not None and d.channel < len(classes):
        where = f", class {escape(classes[d.channel].name)}"  # a classifier's channels are its classes
    badge = f'<span class="badge">drifted: {escape(", ".join(_flagged_by(d)))}</span>' if d.drifted else ""
    rates = [
        f"{label} {value:.1%}"
        for label, value in (
            ("out of range", d.out_of_range),
            ("out of vocabulary", d.out_of_vocabulary),
            ("imputed", d.imputed),
        )
        if value
    ]
    caption = (
        f'<figcaption><span class="name">{escape(d.name)}</span> <span class="kind">({d.kind}{where})</span> '
        f'<span class="score">{score}</span> <span class="threshold">(threshold {d.threshold:.3g})</span>{badge}'
        + _dispersion(d, ref)
        + (f'<div class="shift">mean shift {d.shift:.4g}</div>' if d.shift is not None else "")
        + _channels(d, classes)
        + (f'<div class="rates">{escape(", ".join(rates))}</div>' if rates else "")
        + "</figcaption>"
    )
    cls = "drifted" if d.drifted else ""
    table = _class_table(classes) if classes else ""
    return f'<figure class="{cls}" data-name="{escape(d.name)}">{caption}{_bars(d, ref, css)}{table}</figure>'


def _threshold_said(threshold: float | None) -> str:
    if threshold is None:
        return (
            "the feature's own threshold (the score a window of training data passes by chance, calibrated at export)"
        )
    return f"{threshold:g}"


def _flagged_by(d: Drift) -> list[str]:
    """The statistics over the threshold: "PSI", and what the dispersion measured."""
    found = ["PSI"] if d.score > d.threshold else []
    if d.dispersion is not None and d.dispersion.score > d.threshold:
        found.append(MEASURED.get(d.dispersion.of, d.dispersion.of))
    if d.shift is not None and d.shift > d.threshold:
        found.append("mean")
    return found


def training_dispersion(d: Drift, ref: Reference) -> float | None:
    """Training's std, steps' std (of the dispersion's channel) or concentration: what the served one is against."""
    if d.dispersion is None or d.dispersion.of == "block_mean":
        return None  # a map of blocks: no one training value to set beside the served one
    if d.dispersion.of == "concentration":
        return concentration(np.rint(np.asarray(ref.bins[0].fractions) * ref.count))
    recorded = ref.stats.get(d.dispersion.of)
    if isinstance(recorded, list):
        recorded = recorded[d.dispersion.channel or 0]
    return float(recorded) if isinstance(recorded, (int, float)) else None


def _dispersion(d: Drift, ref: Reference) -> str:
    """The caption's dispersion line: its score, what it measured, training's and served's value."""
    if d.dispersion is None:
        return ""
    of = d.dispersion.of
    where = f", channel {d.dispersion.channel}" if d.dispersion.channel is not None else ""
    trained, served = training_dispersion(d, ref), d.dispersion.served
    values = "" if trained is None or served is None else f": training {trained:.4g}, served {served:.4g}"
    return (
        f'<div class="dispersion" data-of="{escape(of)}">dispersion {d.dispersion.score:.3f} '
        f"({escape(MEASURED.get(of, of))}{where}){escape(values)}</div>"
    )


def _channels(d: Drift, classes: list[ClassShare] | None) -> str:
    """Every channel of a tensor over the threshold, by PSI or dispersion (a classifier's by class name)."""
    if not d.drifted_channels:
        return ""
    names = [
        classes[c].name if classes and c < len(classes) else str(c)  # a classifier's channels are its classes
        for c, _ in d.drifted_channels
    ]
    what = "classes" if classes else "channels"
    listed = ", ".join(f"{n} ({s:.3f})" for n, (_, s) in zip(names, d.drifted_channels, strict=True))
    data = " ".join(str(c) for c, _ in d.drifted_channels)
    return f'<div class="channels" data-channels="{data}">drifted {what}: {escape(listed)}</div>'


def _class_table(classes: list[ClassShare]) -> str:
    """Per class: its mean share in training and served, and the served rows it topped."""
    rows = []
    for c in classes:
        t = c.training_mean_share
        rows.append(
            f'<tr data-class="{escape(c.name)}"><td>{escape(c.name)}</td>'
            f"<td>{'' if t is None else f'{t:.1%}'}</td><td>{c.mean_share:.1%}</td>"
            f"<td>{c.top_rows} ({c.top_share:.1%})</td></tr>"
        )
    head = "<tr><th>class</th><th>training mean</th><th>served mean</th><th>top class of</th></tr>"
    return f'<table class="classes">{head}{"".join(rows)}</table>'


def _bars(d: Drift, ref: Reference, css: str) -> str:
    """Grouped bars: per bin, the training fraction and the served one."""
    bins = ref.bins[d.channel or 0]
    training = bins.fractions.tolist()
    served = list(d.served) if len(d.served) == len(training) else [0.0] * len(training)
    labels = [label or '""' for label in bins.labels()]  # the empty string (padding) is a token too
    if bins.values is not None and len(training) > MAX_BARS:
        labels, training, served = top_bars(labels, training, served)
    k = len(training)
    top = max(max(training), max(served), 1e-9)
    slot = (WIDTH - 16) / k
    bar = max(slot * 0.4, 1.0)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    colour = DRIFTED if d.drifted else SERVED
    shapes = [f'<line x1="8" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - 8}" y2="{HEIGHT - PAD_BOTTOM}" stroke="#dadce0"/>']
    for i, (label, t, s) in enumerate(zip(labels, training, served, strict=True)):
        x = 8 + i * slot + (slot - 2 * bar) / 2
        tip = escape(f"{label}: training {t:.1%}, served {s:.1%}")
        for j, (value, fill) in enumerate(((t, TRAINING), (s, colour))):
            h = plot_h * math.sqrt(value / top)  # square root: a dominant bin must not flatten the rest
            shapes.append(
                f'<rect x="{x + j * bar:.1f}" y="{HEIGHT - PAD_BOTTOM - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{fill}"><title>{tip}</title></rect>'
            )
    named = range(k) if k <= 5 else sorted({0, k // 2, k - 1})  # every bin's name, or the first, middle, last
    room = max(int((slot if k <= 5 else WIDTH / 3) / 6), 4)  # characters that fit under a bin at 10px
    for i in named:
        x = 8 + (i + 0.5) * slot
        anchor = "middle"
        if k > 5 and i == 0:
            x, anchor = 8, "start"
        elif k > 5 and i == k - 1:
            x, anchor = WIDTH - 8, "end"
        text = escape(labels[i] if len(labels[i]) <= room else labels[i][: room - 1] + "…")
        shapes.append(
            f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" fill="#5f6368" '
            f'text-anchor="{anchor}">{text}</text>'
        )
    return (
        f'<svg class="plot {css}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(d.name)}: training and served">'
        + "".join(shapes)
        + "</svg>"
    )


def top_bars(
    labels: list[str], training: list[float], served: list[float]
) -> tuple[list[str], list[float], list[float]]:
    """Many categories' bars cut to the other values summed in one bar, then the TOP_BARS values with the largest
    share either side (in their order), then the last bin (the rest) as it is."""
    values = len(labels) - 1
    top = sorted(sorted(range(values), key=lambda i: -max(training[i], served[i]))[:TOP_BARS])
    others = sorted(set(range(values)) - set(top))
    sums = [float(sum(side[i] for i in others)) for side in (training, served)]
    # The others first: the axis names the first, middle and last bars, so both sums are named.
    return (
        [f"{len(others)} others", *(labels[i] for i in top), labels[-1]],
        [sums[0], *(training[i] for i in top), training[-1]],
        [sums[1], *(served[i] for i in top), served[-1]],
    )

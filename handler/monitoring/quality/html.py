"""The quality report as one self-contained HTML page: each metric against its baseline band, and the worst slices.

No script, no stylesheet or font from elsewhere. Per metric, an inline SVG strip: the baseline's bootstrap interval
(grey band), the line past which the metric is degraded (baseline value worsened by its threshold, dashed), the
baseline value (a tick) and the served value (a dot: blue, red when degraded); every mark has a tooltip. Then the
slices that fell most, with their rows. Drawn from the JSON report (`report.py`), so the page says what it says.
"""

from __future__ import annotations

from html import escape
from typing import Any

from handler.monitoring.quality.metrics import LOWER_IS_BETTER

WIDTH, HEIGHT, PAD = 340, 58, 14
BAND, LIMIT, SERVED, DEGRADED = "#dadce0", "#d93025", "#1a73e8", "#d93025"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#202124;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.summary{color:#5f6368;margin:0 0 8px}.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;padding:8px;border:1px solid #dadce0;border-radius:6px;width:340px}
figure.degraded{border-color:#d93025;background:#fce8e6}
figcaption{font-size:13px;margin-bottom:4px}.name{font-weight:600}.badge{color:#fff;background:#d93025;
border-radius:3px;padding:0 4px;font-size:11px;margin-left:4px}.detail{color:#5f6368;font-size:12px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #dadce0;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def render(report: dict[str, Any]) -> str:
    """The whole page for one quality report (the dict `report.py` prints)."""
    title = f"Model quality: {escape(str(report['model']))} v{escape(str(report['version']))}"
    problem = report["problem"]
    degraded = report["degraded"]
    compared = report.get("baseline") or {}
    figures = "".join(_figure(name, value, compared.get(name)) for name, value in _metrics(report))
    if report.get("baseline") is None:
        verdict = "<strong>No baseline to compare with:</strong> the metrics alone (export with validation_data)."
    elif degraded:
        verdict = f"<strong>{len(degraded)} metric(s) degraded:</strong> {escape(', '.join(degraded))}"
    else:
        verdict = "<strong>No metric is worse than the baseline by more than its threshold.</strong>"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',  # no favicon request, so no console error for it
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="summary">{escape(str(report["captured"]))} joined with {escape(str(report["labels"]))}: '
        f"{report['rows_joined']} rows joined, {report['unmatched_labels']} labels matched no captured row, "
        f"{report['unlabelled_rows']} captured rows had no label, {report['malformed_labels']['count']} label "
        f"line(s) unusable. Problem: {escape(problem['type'])}, output {escape(problem['output'])} "
        f"(from {escape(problem['from'])}).</p>",
        f'<p id="verdict">{verdict}</p>',
        "<h2>Metrics</h2>",
        '<p class="summary">Grey band: the baseline\'s 95% interval on held-out rows; black tick: the baseline; '
        "dashed red: the metric is degraded past it; dot: the served rows.</p>",
        f'<div class="grid">{figures}</div>',
        "<h2>Slices that fell most</h2>",
        _slices(report["slices"]["worst"]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _metrics(report: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [(n, v) for n, v in report["metrics"].items() if n != "confusion_matrix"]


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _figure(name: str, value: float | None, base: dict[str, Any] | None) -> str:
    bad = bool(base and base["degraded"])
    parts = [f"served {_number(value)}"]
    if base is not None:
        parts += [f"baseline {_number(base['baseline'])}", f"threshold {_number(base['threshold'])}"]
    caption = (
        f'<figcaption><span class="name">{escape(name)}</span>'
        + ('<span class="badge">degraded</span>' if bad else "")
        + f'<div class="detail">{escape(", ".join(parts))}</div></figcaption>'
    )
    cls = "degraded" if bad else ""
    return f'<figure class="{cls}" data-name="{escape(name)}">{caption}{_strip(name, value, base, bad)}</figure>'


def _strip(name: str, value: float | None, base: dict[str, Any] | None, bad: bool) -> str:
    """The metric's axis: the interval, the degradation limit, the baseline and the served value."""
    limit = None
    if base is not None and base.get("threshold") is not None:
        worse = 1 if name in LOWER_IS_BETTER else -1
        limit = base["baseline"] + worse * base["threshold"]
    interval = (base or {}).get("interval") or []
    marks = [v for v in (value, limit, (base or {}).get("baseline"), *interval) if v is not None]
    lo, hi = (min(marks), max(marks)) if marks else (0.0, 1.0)
    span = (hi - lo) or max(abs(hi), 1.0)
    lo, hi = lo - 0.1 * span, hi + 0.1 * span

    def x(v: float) -> float:
        return PAD + (v - lo) / (hi - lo) * (WIDTH - 2 * PAD)

    mid = HEIGHT / 2
    shapes = [f'<line x1="{PAD}" y1="{mid}" x2="{WIDTH - PAD}" y2="{mid}" stroke="#9aa0a6"/>']
    if len(interval) == 2:
        a, b = x(interval[0]), x(interval[1])
        tip = escape(f"the baseline's 95% interval: {interval[0]:.4g} to {interval[1]:.4g}")
        shapes.append(
            f'<rect class="band" x="{a:.1f}" y="{mid - 10}" width="{max(b - a, 1):.1f}" height="20" fill="{BAND}">'
            f"<title>{tip}</title></rect>"
        )
    if limit is not None:
        tip = escape(f"degraded past {limit:.4g}")
        shapes.append(
            f'<line class="limit" x1="{x(limit):.1f}" y1="{mid - 16}" x2="{x(limit):.1f}" y2="{mid + 16}" '
            f'stroke="{LIMIT}" stroke-dasharray="3,2"><title>{tip}</title></line>'
        )
    if base is not None:
        at, tip = x(base["baseline"]), escape(f"baseline {base['baseline']:.4g}")
        shapes.append(
            f'<line class="baseline" x1="{at:.1f}" y1="{mid - 12}" x2="{at:.1f}" y2="{mid + 12}" stroke="#202124" '
            f'stroke-width="2"><title>{tip}</title></line>'
        )
    if value is not None:
        colour = DEGRADED if bad else SERVED
        shapes.append(
            f'<circle class="served" cx="{x(value):.1f}" cy="{mid}" r="6" fill="{colour}">'
            f"<title>{escape(f'served {value:.4g}')}</title></circle>"
        )
    for v, anchor, at in ((lo, "start", PAD), (hi, "end", WIDTH - PAD)):
        shapes.append(
            f'<text x="{at}" y="{HEIGHT - 2}" font-size="10" fill="#5f6368" text-anchor="{anchor}">{v:.3g}</text>'
        )
    return (
        f'<svg class="metric-plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(name)}: served against the baseline">'
        + "".join(shapes)
        + "</svg>"
    )


def _slices(worst: list[dict[str, Any]]) -> str:
    if not worst:
        return '<p class="summary">No slice to name (no baseline of slices, or fewer than 30 rows in each).</p>'
    head = "<tr><th>feature</th><th>slice</th><th>rows</th><th>metric</th><th>served</th><th>reference</th>"
    head += "<th>worse by</th></tr>"
    rows = "".join(
        f'<tr class="slice" data-feature="{escape(s["feature"])}" data-slice="{escape(s["slice"])}">'
        f"<td>{escape(s['feature'])}</td><td>{escape(s['slice'])}</td><td class=num>{s['rows']}</td>"
        f"<td>{escape(s['metric'])}</td><td class=num>{_number(s['value'])}</td>"
        f"<td class=num>{_number(s['reference'])}</td><td class=num>{_number(s['worse_by'])}</td></tr>"
        for s in worst
    )
    return f'<table class="worst-slices">{head}{rows}</table>'

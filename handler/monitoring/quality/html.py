"""The quality report as one self-contained HTML page: each metric against its baseline band, and the worst slices.

No script, no stylesheet or font from elsewhere. Per metric, an inline SVG strip: the baseline's bootstrap interval
(grey band), the line past which the metric is degraded (baseline value worsened by its threshold, dashed), the
baseline value (a tick) and the served value (a dot: blue, red when degraded); every mark has a tooltip. Then the
slices that fell most, with their rows. Drawn from the JSON report (`report.py`), so the page says what it says.

With earlier reports (`--history`, `history.py`), each metric also gets a chart over time: one point a report, in
order, the last one this report's, against this report's baseline band (the interval, the baseline and the
degradation line across the whole chart); a point is red when its own report found that metric degraded.
"""

from __future__ import annotations

from html import escape
from typing import Any

from handler.monitoring.quality.history import Point, of_report
from handler.monitoring.quality.metrics import LOWER_IS_BETTER
from handler.monitoring.report.html import page_start

WIDTH, HEIGHT, PAD = 340, 58, 14
TREND_HEIGHT, TREND_PAD = 130, 18  # the chart over time; the pad leaves room for the axis labels
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


def render(report: dict[str, Any], history: list[Point] | None = None) -> str:
    """The whole page for one quality report (the dict `report.py` prints), with earlier ones over time if given."""
    title = f"Model quality: {escape(str(report['model']))} v{escape(str(report['version']))}"
    problem = report["problem"]
    degraded = report["degraded"]
    compared = report.get("baseline") or {}
    series = [*history, of_report(report)] if history else None
    figures = "".join(_figure(name, value, compared.get(name), series) for name, value in _metrics(report))
    if report.get("baseline") is None:
        verdict = "<strong>No baseline to compare with:</strong> the metrics alone (export with validation_data)."
    elif degraded:
        verdict = f"<strong>{len(degraded)} metric(s) degraded:</strong> {escape(', '.join(degraded))}"
    else:
        verdict = "<strong>No metric is worse than the baseline by more than its threshold.</strong>"
    parts = [
        *page_start(title, STYLE),
        f'<p class="summary">{escape(str(report["captured"]))} joined with {escape(str(report["labels"]))}: '
        f"{report['rows_joined']} rows joined, {report['unmatched_labels']} labels matched no captured row, "
        f"{report['unlabelled_rows']} captured rows had no label, {report['malformed_labels']['count']} label "
        f"line(s) unusable. Problem: {escape(problem['type'])}, output {escape(problem['output'])} "
        f"(from {escape(problem['from'])}).</p>",
        f'<p id="verdict">{verdict}</p>',
        "<h2>Metrics</h2>",
        '<p class="summary">Grey band: the baseline\'s 95% interval on held-out rows; black tick: the baseline; '
        "dashed red: the metric is degraded past it; dot: the served rows.</p>",
        *(_trend_legend(series) if series else []),
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


def _figure(name: str, value: float | None, base: dict[str, Any] | None, series: list[Point] | None = None) -> str:
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
    trend = _trend(name, series, base) if series else ""
    return f'<figure class="{cls}" data-name="{escape(name)}">{caption}{_strip(name, value, base, bad)}{trend}</figure>'


def _trend_legend(series: list[Point]) -> list[str]:
    return [
        f'<p class="summary" id="trend-legend">Below each strip, the metric over {len(series)} reports, oldest first '
        f"({escape(series[0].label)} to {escape(series[-1].label)}): the grey band, black and dashed red lines are "
        "this report's baseline; a red point is one its report found degraded.</p>"
    ]


def _limit(name: str, base: dict[str, Any] | None) -> float | None:
    """The value past which the metric is degraded: the baseline worsened by its threshold."""
    if base is None or base.get("threshold") is None:
        return None
    return float(base["baseline"]) + (1 if name in LOWER_IS_BETTER else -1) * float(base["threshold"])


def _trend(name: str, series: list[Point], base: dict[str, Any] | None) -> str:
    """The metric over the reports, one point each, against the baseline band."""
    values = [p.metrics.get(name) for p in series]
    interval = (base or {}).get("interval") or []
    limit = _limit(name, base)
    marks = [v for v in (*values, limit, (base or {}).get("baseline"), *interval) if v is not None]
    lo, hi = (min(marks), max(marks)) if marks else (0.0, 1.0)
    span = (hi - lo) or max(abs(hi), 1.0)
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    top, bottom = 6, TREND_HEIGHT - TREND_PAD

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    def x(i: int) -> float:
        return PAD + (i + 0.5) * (WIDTH - 2 * PAD) / len(series)

    shapes = []
    if len(interval) == 2:
        a, b = y(max(interval)), y(min(interval))
        tip = escape(f"the baseline's 95% interval: {interval[0]:.4g} to {interval[1]:.4g}")
        shapes.append(
            f'<rect class="band" x="{PAD}" y="{a:.1f}" width="{WIDTH - 2 * PAD}" height="{max(b - a, 1):.1f}" '
            f'fill="{BAND}"><title>{tip}</title></rect>'
        )
    if base is not None:
        at, tip = y(base["baseline"]), escape(f"baseline {base['baseline']:.4g}")
        shapes.append(
            f'<line class="baseline" x1="{PAD}" y1="{at:.1f}" x2="{WIDTH - PAD}" y2="{at:.1f}" stroke="#202124">'
            f"<title>{tip}</title></line>"
        )
    if limit is not None:
        shapes.append(
            f'<line class="limit" x1="{PAD}" y1="{y(limit):.1f}" x2="{WIDTH - PAD}" y2="{y(limit):.1f}" '
            f'stroke="{LIMIT}" stroke-dasharray="3,2"><title>{escape(f"degraded past {limit:.4g}")}</title></line>'
        )
    drawn = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
    if len(drawn) > 1:  # a gap (a report without the metric) is bridged: the points say where values are
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in drawn)
        shapes.append(f'<polyline points="{path}" fill="none" stroke="{SERVED}" stroke-width="1.5"/>')
    for i, (point, v) in enumerate(zip(series, values, strict=True)):
        if v is None:
            continue
        bad = name in point.degraded
        tip = escape(f"{point.label}: {v:.4g}" + (" (degraded)" if bad else ""))
        shapes.append(
            f'<circle class="point{" degraded" if bad else ""}" data-label="{escape(point.label)}" cx="{x(i):.1f}" '
            f'cy="{y(v):.1f}" r="4" fill="{DEGRADED if bad else SERVED}"><title>{tip}</title></circle>'
        )
    for label, anchor, at in ((series[0].label, "start", PAD), (series[-1].label, "end", WIDTH - PAD)):
        shapes.append(
            f'<text x="{at}" y="{TREND_HEIGHT - 4}" font-size="10" fill="#5f6368" text-anchor="{anchor}">'
            f"{escape(label)}</text>"
        )
    for v, at in ((hi, top + 8), (lo, bottom - 2)):
        shapes.append(f'<text x="2" y="{at:.1f}" font-size="9" fill="#5f6368">{v:.3g}</text>')
    return (
        f'<svg class="metric-trend" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{TREND_HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {TREND_HEIGHT}" role="img" aria-label="{escape(name)} over {len(series)} reports">'
        + "".join(shapes)
        + "</svg>"
    )


def _strip(name: str, value: float | None, base: dict[str, Any] | None, bad: bool) -> str:
    """The metric's axis: the interval, the degradation limit, the baseline and the served value."""
    limit = _limit(name, base)
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

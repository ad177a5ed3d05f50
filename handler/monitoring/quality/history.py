"""Earlier quality reports, for the page's metrics over time: `--history DIR` holds the JSON `report.py` printed.

A report says nothing of when it was made, so the files' names give the order: name them so they sort in time
(`2026-12-01.json`, `2026-12-02.json`, ...); each point of the page is labelled with its file's stem. The report
being made now is the last point.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handler.monitoring.quality.report import QualityInputError


@dataclass(frozen=True)
class Point:
    """One report of the series: its label, each metric's value, and the metrics it found degraded."""

    label: str
    metrics: dict[str, float | None]
    degraded: frozenset[str] = field(default_factory=frozenset)


def read_history(folder: Path, model: str) -> list[Point]:
    """Every `*.json` report in the folder, in name order; QualityInputError naming the file and why otherwise."""
    if not folder.is_dir():
        raise QualityInputError(f"--history {folder}: no such folder (give the folder of earlier JSON reports)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if not files:
        raise QualityInputError(
            f"--history {folder}: no *.json report in it (save each run's report there: "
            f"python -m handler quality ... > {folder}/YYYY-MM-DD.json)"
        )
    return [_point(path, model) for path in files]


def _point(path: Path, model: str) -> Point:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QualityInputError(f"--history {path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise QualityInputError(f"--history {path}: not a JSON report ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        raise QualityInputError(f'--history {path}: no "metrics" object: not a report of python -m handler quality')
    if report.get("model") != model:
        raise QualityInputError(f"--history {path}: a report of model {report.get('model')!r}, not {model!r}")
    return Point(path.stem, _metrics(report, path), frozenset(_names(report.get("degraded"), path)))


def of_report(report: dict[str, Any], label: str = "this report") -> Point:
    """The report being made now, as the series' last point."""
    return Point(label, _metrics(report, None), frozenset(_names(report.get("degraded"), None)))


def _metrics(report: dict[str, Any], path: Path | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, value in report["metrics"].items():
        if name == "confusion_matrix":
            continue
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise QualityInputError(f"--history {path}: metric {name!r} is {value!r}, not a number")
        out[name] = None if value is None or not math.isfinite(value) else float(value)
    return out


def _names(degraded: Any, path: Path | None) -> list[str]:
    if degraded is None:
        return []
    if not isinstance(degraded, list) or not all(isinstance(n, str) for n in degraded):
        raise QualityInputError(f'--history {path}: "degraded" must be a list of metric names')
    return degraded

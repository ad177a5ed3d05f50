"""Compare answers with the golden outputs recorded at export, and replay every case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.errors import SkewlessError


@dataclass(frozen=True)
class CaseResult:
    name: str
    ok: bool
    max_diff: float
    detail: str


def compare(expected: dict[str, Any], actual: Any, atol: float, rtol: float) -> tuple[bool, float, str]:
    """Same response keys, same shape, every value within atol + rtol * |expected|."""
    if not isinstance(actual, dict) or set(actual) != set(expected):
        keys = sorted(actual) if isinstance(actual, dict) else type(actual).__name__
        return False, float("inf"), f"response keys {keys} != {sorted(expected)}"
    worst, detail = 0.0, ""
    for key, exp in expected.items():
        try:
            a = np.asarray(actual[key], dtype=np.float64)
        except (TypeError, ValueError):
            return False, float("inf"), f"'{key}' is not numeric: {str(actual[key])[:80]}"
        e = np.asarray(exp, dtype=np.float64)
        if a.shape != e.shape:
            return False, float("inf"), f"'{key}' has shape {list(a.shape)}, expected {list(e.shape)}"
        excess = np.abs(a - e) - rtol * np.abs(e)
        diff = float(np.max(np.abs(a - e))) if a.size else 0.0
        worst = max(worst, diff)
        if a.size and float(np.max(excess)) > atol:
            i = int(np.argmax(excess))
            detail = f"'{key}'[{i}] = {a.flat[i]:.7g}, expected {e.flat[i]:.7g}"
            return False, worst, detail
    return True, worst, ""


def replay(golden: dict[str, Any], answer: Callable[[Any], Any]) -> list[CaseResult]:
    """Send every golden request through `answer` (request body -> response body) and compare."""
    tol = golden["tolerance"]
    results = []
    for case in golden["cases"]:
        try:
            actual = answer(case["request"])
        except SkewlessError as exc:
            results.append(CaseResult(case["name"], False, float("inf"), f"{type(exc).__name__}: {exc.message}"))
            continue
        ok, diff, detail = compare(case["response"], actual, tol["atol"], tol["rtol"])
        results.append(CaseResult(case["name"], ok, diff, detail))
    return results


def table(results: list[CaseResult], only_failures: bool = True) -> str:
    """A readable table of the cases (by default only those that differ)."""
    rows = [r for r in results if not (only_failures and r.ok)]
    width = max([len(r.name) for r in rows] + [4])
    lines = [f"{'case':<{width}}  {'result':<6}  {'max |diff|':>10}  detail"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'DIFFERS':<6}  {r.max_diff:>10.3g}  {r.detail}")
    return "\n".join(lines)

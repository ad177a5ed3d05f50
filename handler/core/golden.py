"""Golden cases: requests as clients send them, and what the training pipeline answered for them.

`golden.json` holds, per case, the request and the expected outputs by output name as arrays with
the batch axis (`model.predict` in the training process, or the `expected` given to the export),
plus whether the request carries the batch dimension. The replay reads an answer back into
arrays by the protocol's own rules (TF Serving: `predictions` one entry per instance, an object
per instance for several outputs; `outputs` a batch or `{name: batch}`), so an answer stacked by
output, or keyed wrong, fails even when its numbers are right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.errors import SkewlessError

GOLDEN_FORMAT = 2


@dataclass(frozen=True)
class CaseResult:
    name: str
    ok: bool
    max_diff: float
    detail: str


def outputs_of_v1(response: Any, request: Mapping[str, Any], names: list[str], batched: bool) -> dict[str, Any]:
    """A TF Serving v1 answer -> {output name: batch}; raise ValueError where its layout is not TF Serving's."""
    key = "predictions" if "instances" in request else "outputs"
    if not isinstance(response, dict) or list(response) != [key]:
        keys = sorted(response) if isinstance(response, dict) else type(response).__name__
        raise ValueError(f"the answer has keys {keys}, expected ['{key}']")
    body = response[key]
    if key == "predictions":
        if not isinstance(body, list):
            raise ValueError("'predictions' is not a list with one entry per instance")
        if len(names) == 1:
            return {names[0]: body}
        for i, entry in enumerate(body):
            if not isinstance(entry, dict) or sorted(entry) != sorted(names):
                raise ValueError(f"predictions[{i}] is not an object keyed by the outputs {names}")
        return {name: [entry[name] for entry in body] for name in names}
    if len(names) == 1:
        return {names[0]: body if batched else [body]}
    if not isinstance(body, dict) or sorted(body) != sorted(names):
        raise ValueError(f"'outputs' is not an object keyed by the outputs {names}")
    return {name: (body[name] if batched else [body[name]]) for name in names}


def compare_outputs(
    expected: Mapping[str, Any], actual: Mapping[str, Any], atol: float, rtol: float
) -> tuple[bool, float, str]:
    """Same output names, same shapes, every number within atol + rtol * |expected| (strings equal)."""
    if sorted(expected) != sorted(actual):
        return False, float("inf"), f"outputs {sorted(actual)} != {sorted(expected)}"
    worst = 0.0
    for name, exp in expected.items():
        e = np.asarray(exp)
        try:
            a = np.asarray(actual[name], dtype=e.dtype if e.dtype.kind in "biuf" else None)
        except (TypeError, ValueError):
            return False, float("inf"), f"'{name}' is not numeric where training's is"
        if a.shape != e.shape:
            return False, float("inf"), f"'{name}' has shape {list(a.shape)}, expected {list(e.shape)}"
        if e.dtype.kind not in "biuf":
            if not np.array_equal(a, e):
                return False, float("inf"), f"'{name}' differs"
            continue
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        if not np.isfinite(a64).all():
            return False, float("inf"), f"'{name}' holds NaN or infinity"
        diff = np.abs(a64 - e64)
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
        excess = diff - rtol * np.abs(e64)
        if excess.size and float(excess.max()) > atol:
            i = int(np.argmax(excess))
            at = tuple(int(k) for k in np.unravel_index(i, e.shape))
            return False, worst, f"'{name}'[{at}] = {a64.flat[i]:.7g}, expected {e64.flat[i]:.7g}"
    return True, worst, ""


def replay(golden: Mapping[str, Any], answer: Callable[[Any], Any], names: list[str]) -> list[CaseResult]:
    """Send every golden request through `answer` (v1 body -> v1 answer) and compare with training's outputs."""
    tol = golden["tolerance"]
    results = []
    for case in golden["cases"]:
        try:
            response = answer(case["request"])
        except SkewlessError as exc:
            results.append(CaseResult(case["name"], False, float("inf"), f"{type(exc).__name__}: {exc.message}"))
            continue
        try:
            actual = outputs_of_v1(response, case["request"], names, case["batched"])
        except ValueError as exc:
            results.append(CaseResult(case["name"], False, float("inf"), str(exc)))
            continue
        ok, diff, detail = compare_outputs(case["expected"], actual, tol["atol"], tol["rtol"])
        results.append(CaseResult(case["name"], ok, diff, detail))
    return results


def table(results: list[CaseResult], only_failures: bool = True) -> str:
    """A readable table of the cases (by default only those that differ)."""
    rows = [r for r in results if not (only_failures and r.ok)]
    width = max([len(r.name) for r in rows] + [4])
    lines = [f"{'case':<{width}}  {'result':<7}  {'max |diff|':>10}  detail"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'DIFFERS':<7}  {r.max_diff:>10.3g}  {r.detail}")
    return "\n".join(lines)

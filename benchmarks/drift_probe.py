"""What the drift watch costs beside the warm path, at batch 1 and batch 1024, measured in one process.

Two functions serve churn side by side, one with the watch (DRIFT_WINDOW=1000) and one without
(DRIFT_WINDOW=0), timed in alternation so that the machine's noise falls on both. The watch's own
cost is also timed alone: `DriftMonitor.observe` on the same batch, over whole windows, with the
EMF lines of every closed window printed (to /dev/null), so the per-window binning and the
metrics are amortised over the calls that pay for them. The issue's budget: at most 5% of the
warm p50 at batch 1, at most 10% of the per-row cost at batch 1024.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lambda_context import Context

ROOT = Path(__file__).resolve().parent.parent
CHURN = ROOT / "model_artifacts" / "churn"


def _event(rows: list[dict[str, Any]]) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(json.loads((ROOT / "events" / "http_api.json").read_text()))
    event["body"] = json.dumps({"instances": rows})
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


def warm_drift(batches: tuple[int, ...] = (1, 1024), repeats: dict[int, int] | None = None) -> dict[str, Any]:
    """Per batch size: handler p50 with and without the watch, and the watch's own amortised cost."""
    from handler.app import Function
    from handler.settings import Settings
    from training import churn_data

    repeats = repeats or {1: 2000, 1024: 200}
    settings = Settings.from_env()
    settings = replace(settings, model_dir=CHURN, drift_window=settings.drift_window or 1000)
    on, off = Function(settings), Function(replace(settings, drift_window=0))
    assert on.drift is not None and off.drift is None and on.service is not None
    handlers = {"on": on.handler(), "off": off.handler()}
    # Fresh rows from the training distribution: windows that do not drift, as most production windows.
    pool, _ = churn_data.generate(4096, 7)
    rows = [churn_data.row(pool, i) for i in range(4096)]
    out: dict[str, Any] = {"runtime": on.service.runtime, "window": on.drift.window}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # EMF lines: printed, not kept
        for n in batches:
            batches_of_n = [rows[i : i + n] for i in range(0, 4096 - n + 1, n)]
            events = [_event(b) for b in batches_of_n]
            times: dict[str, list[float]] = {"on": [], "off": []}
            for i in range(20):
                for h in handlers.values():
                    h(events[i % len(events)], Context())
            for i in range(repeats.get(n, 200)):
                for name, h in handlers.items():
                    t = time.perf_counter()
                    h(events[i % len(events)], Context())
                    times[name].append(time.perf_counter() - t)
            served = [on.service.coercer.coerce({"instances": b}).columns for b in batches_of_n]
            predictions = [on.service.run(b) for b in served]
            calls = max(1, 20 * on.drift.window // n)  # twenty whole windows
            t = time.perf_counter()
            for i in range(calls):
                on.drift.observe(served[i % len(served)], predictions[i % len(served)])
            per_call = (time.perf_counter() - t) / calls
            p50_on, p50_off = float(np.median(times["on"])), float(np.median(times["off"]))
            out[str(n)] = {
                "handler_p50_ms_without_watch": p50_off * 1e3,
                "handler_p50_ms_with_watch": p50_on * 1e3,
                "watch_ms_per_call": per_call * 1e3,
                "watch_us_per_row": per_call / n * 1e6,
                "handler_us_per_row": p50_off / n * 1e6,
                "watch_share_of_p50": per_call / p50_off,
                "windows_reported": on.drift.reports,
            }
    return out


if __name__ == "__main__":
    # A quick check that the probe runs (make bench runs it fully): a few repeats only.
    print(json.dumps(warm_drift(repeats={1: 50, 1024: 5}), indent=1))

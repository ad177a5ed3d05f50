"""The warm path's targets, measured in one process each (`python -m benchmarks.probes NAME OUT.json`).

- `warm_breakdown`: one churn example through an HTTP API v2 event, and where its time goes: the
  whole `lambda_handler`, `HttpApi.handle` without Powertools' Logger and Metrics decorators, the
  routing on a route that does nothing (`GET /v2/health/live`), the body's parsing, the
  core's own time (`Service.predict_v1` on the parsed body: coercion, preprocessing, forward pass,
  answer, drift watch) and the forward pass alone.
- `warm_ratios`: 32 `digits` images and 1,024 churn rows through an HTTP API v2 event, next to
  `json.loads` of the same body and the forward pass on the same (prepared) inputs.

Every step is timed in alternation with the others, so that the machine's noise falls on all of them;
the figures are medians. The issue's targets are ratios within one run, never absolute times.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lambda_context import Context

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "model_artifacts"


def _golden_rows(model: str, case: str, n: int) -> list[Any]:
    golden = json.loads((ARTIFACTS / model / "golden.json").read_text())
    rows = next(c for c in golden["cases"] if c["name"] == case)["request"]["instances"]
    return [rows[i % len(rows)] for i in range(n)]


def http_event(model: str, rows: list[Any], method: str = "POST", path: str | None = None) -> dict[str, Any]:
    """An HTTP API (v2) event: `rows` to the model's TF Serving predict route, or a GET of `path`."""
    event: dict[str, Any] = copy.deepcopy(json.loads((ROOT / "events" / "http_api.json").read_text()))
    path = path or f"/v1/models/{model}:predict"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if method == "GET":
        event.pop("body", None)
        event["headers"].pop("content-length", None)
        event["headers"].pop("content-type", None)
    else:
        event["body"] = json.dumps({"instances": rows})
        event["headers"]["content-length"] = str(len(event["body"]))
    return event


def _interleaved(steps: dict[str, Callable[[], Any]], repeats: int, after: Callable[[], Any]) -> dict[str, float]:
    """Each step `repeats` times, in turn; `after` runs (untimed) after every step. Medians in seconds."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(max(5, repeats // 50)):  # warm up every step
        for step in steps.values():
            step()
            after()
    for _ in range(repeats):
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
            after()
    return {name: float(np.median(v)) for name, v in times.items()}


def _function(model: str) -> Any:
    from handler.app import Function
    from handler.settings import Settings

    return Function(replace(Settings.from_env(), model_dir=ARTIFACTS / model))


@contextlib.contextmanager
def _emf_to_devnull() -> Iterator[None]:
    """EMF lines are printed as in Lambda, to a file that nobody keeps rather than into the runner's pipe."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def warm_breakdown(repeats: int = 3000) -> dict[str, Any]:
    """One churn example (HTTP API v2): the handler's p50 and where it goes, in microseconds."""
    from handler.core.service import prepare
    from handler.observability import metrics
    from handler.triggers.http.body import parse_json_body

    fn = _function("churn")
    service, api = fn.service, fn.http_api
    assert service is not None
    handler = fn.handler()
    event = http_event("churn", _golden_rows("churn", "batch_of_100", 1))
    live = http_event("churn", [], method="GET", path="/v2/health/live")
    body = event["body"]
    parsed = json.loads(body)
    forward = service.forward()
    inputs, _ = prepare(service.artifacts, service.coercer.coerce(parsed).columns)
    ctx = Context()
    assert handler(event, ctx)["statusCode"] == 200 and api.handle("http", live, ctx)["statusCode"] == 200
    steps: dict[str, Callable[[], Any]] = {
        "lambda_handler": lambda: handler(event, ctx),
        "http_api_handle": lambda: api.handle("http", event, ctx),
        "resolver_floor": lambda: api.handle("http", live, ctx),
        "parse_json_body": lambda: parse_json_body(body),
        "json_loads": lambda: json.loads(body),
        "core_predict_v1": lambda: service.predict_v1(parsed),
        "forward": lambda: forward(inputs),
    }
    with _emf_to_devnull():
        # HttpApi.handle alone adds metrics that only the decorator would publish: dropped after each step.
        medians = _interleaved(steps, repeats, after=metrics.clear_metrics)
    us = {name: s * 1e6 for name, s in medians.items()}
    us["decorators"] = us["lambda_handler"] - us["http_api_handle"]
    us["route_rest"] = us["http_api_handle"] - us["resolver_floor"] - us["parse_json_body"] - us["core_predict_v1"]
    return {"runtime": service.runtime, "us": us, "repeats": repeats}


def warm_ratios(repeats: dict[str, int] | None = None) -> dict[str, Any]:
    """32 digits images and 1,024 churn rows (HTTP API v2): handler, json.loads and forward p50, in ms."""
    from handler.core.service import prepare
    from handler.observability import metrics

    repeats = repeats or {"digits_32": 300, "churn_1024": 200}
    cases = {"digits_32": ("digits", "batch_of_8", 32), "churn_1024": ("churn", "batch_of_100", 1024)}
    out: dict[str, Any] = {}
    for label, (model, case, n) in cases.items():
        fn = _function(model)
        service = fn.service
        assert service is not None
        handler = fn.handler()
        event = http_event(model, _golden_rows(model, case, n))
        body = event["body"]
        forward = service.forward()
        inputs, _ = prepare(service.artifacts, service.coercer.coerce(json.loads(body)).columns)
        ctx = Context()
        assert handler(event, ctx)["statusCode"] == 200
        steps: dict[str, Callable[[], Any]] = {
            "handler": functools.partial(handler, event, ctx),
            "json_loads": functools.partial(json.loads, body),
            "forward": functools.partial(forward, inputs),
        }
        with _emf_to_devnull():
            medians = _interleaved(steps, repeats.get(label, 200), after=lambda: None)
        ms = {name: s * 1e3 for name, s in medians.items()}
        out[label] = {
            **{f"{k}_ms": v for k, v in ms.items()},
            "body_bytes": len(body),
            "overhead_ms": ms["handler"] - ms["forward"],
            "overhead_over_json_loads": (ms["handler"] - ms["forward"]) / ms["json_loads"],
            "handler_over_json_loads": ms["handler"] / ms["json_loads"],
        }
        metrics.clear_metrics()
    out["runtime"] = service.runtime
    return out


if __name__ == "__main__":
    print(json.dumps({"breakdown": warm_breakdown(500), "ratios": warm_ratios({"digits_32": 30, "churn_1024": 20})}))

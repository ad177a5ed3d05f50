"""Fixtures of the drift tests: functions with the drift watch, EMF read back from stdout, a local S3."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from handler.app import Function
from handler.settings import Settings
from tests.conftest import ROOT, load_event

ARTIFACTS = ROOT / "model_artifacts"


def make_function(model: str | Path, **settings: Any) -> Function:
    """A function serving a reference model (or a model folder) on LiteRT (no TensorFlow import)."""
    model_dir = model if isinstance(model, Path) else ARTIFACTS / model
    function = Function(replace(Settings(model_dir=model_dir, serving_runtime="litert"), **settings))
    assert function.service is not None, function.startup_error
    return function


def http_event(path: str, body: Any) -> dict[str, Any]:
    """An HTTP API (v2) POST of `body` to `path`, from the sample event."""
    event = copy.deepcopy(load_event("http_api.json"))
    text = json.dumps(body)
    event.update(rawPath=path, body=text)
    event["requestContext"]["http"]["path"] = path
    event["headers"]["content-length"] = str(len(text))
    return event


def emf_lines(out: str) -> list[dict[str, Any]]:
    """Each EMF object printed on stdout as {"metrics": {name: value}, "dimensions": {name: value}}."""
    found = []
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        (dims,) = directive["Dimensions"]  # one dimension set a line: one series per feature
        metrics = {m["Name"]: doc[m["Name"]] for m in directive["Metrics"]}
        found.append({"metrics": metrics, "dimensions": {d: doc[d] for d in dims}, "namespace": directive["Namespace"]})
    return found


def drift_scores(lines: list[dict[str, Any]], metric: str = "FeatureDrift", dimension: str = "feature") -> list[dict]:
    """Per window (in order), {name: score} from the `metric` lines with `dimension`."""
    windows: list[dict[str, float]] = []
    seen: set[str] = set()
    for line in lines:
        if metric not in line["metrics"]:
            continue
        name = line["dimensions"][dimension]
        if name in seen or not windows:
            windows.append({})
            seen = set()
        seen.add(name)
        (value,) = line["metrics"][metric]
        windows[-1][name] = value
    return windows


@pytest.fixture
def capture_stdout(capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    capsys.readouterr()
    return lambda: capsys.readouterr().out


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the service logs (Powertools JSON lines) while the test runs."""
    from handler.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    try:
        yield stream
    finally:
        target.removeHandler(handler)


def log_messages(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]

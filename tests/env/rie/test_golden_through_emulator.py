"""Every golden case of every model through the Lambda runtime emulator: direct invoke, HTTP API v2, REST API v1.

One emulator per (model, runtime), started cold as Lambda starts a function; answers are checked
against the committed golden outputs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import zoo
from tests.support.api_events import http_api_event, rest_api_event
from tests.support.runtime_emulator import RuntimeEmulator

API_EVENTS: dict[str, Callable[..., dict[str, Any]]] = {"http_api_v2": http_api_event, "rest_api_v1": rest_api_event}
TARGETS = [(name, runtime) for name in zoo.MODELS for runtime in ("tensorflow", "litert")]


@pytest.fixture(scope="module", params=TARGETS, ids=[f"{n}-{r}" for n, r in TARGETS])
def served(
    request: pytest.FixtureRequest, rie: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RuntimeEmulator]]:
    name, runtime = request.param
    log = tmp_path_factory.mktemp(f"rie-{name}-{runtime}") / "emulator.log"
    env = {"MODEL_DIR": str(zoo.model_dir(name)), "SERVING_RUNTIME": runtime}
    with RuntimeEmulator(rie, log, env) as running:
        yield name, running


def _api_body(result: Any) -> tuple[int, Any]:
    """(statusCode, parsed body) of an API Gateway proxy result."""
    assert isinstance(result, dict) and "statusCode" in result, f"not an API Gateway proxy result: {result!r:.300}"
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return int(result["statusCode"]), json.loads(raw)


def test_every_golden_case_as_direct_invoke(served: tuple[str, RuntimeEmulator]) -> None:
    name, emulator = served
    for case in zoo.cases(name):
        answer = emulator.invoke(case["request"])
        assert answer.status == 200, f"emulator status {answer.status}: {answer.body}\n{emulator.log()}"
        zoo.check_v1(name, case, answer.body, "the emulator, direct invoke")


@pytest.mark.parametrize("api", sorted(API_EVENTS))
def test_every_golden_case_through_api_gateway_events(served: tuple[str, RuntimeEmulator], api: str) -> None:
    name, emulator = served
    for case in zoo.cases(name):
        answer = emulator.invoke(API_EVENTS[api](case["request"], path=f"/v1/models/{name}:predict"))
        assert answer.status == 200, f"emulator status {answer.status}: {answer.body}\n{emulator.log()}"
        status, body = _api_body(answer.body)
        assert status == 200, f"{name}/{case['name']} via {api}: HTTP {status}: {body}"
        zoo.check_v1(name, case, body, f"the emulator, {api}")

"""Every golden case through the Lambda runtime emulator: direct invoke, HTTP API v2, REST API v1."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.core.golden import compare
from tests.conftest import ARTIFACTS
from tests.support.api_events import http_api_event, rest_api_event
from tests.support.runtime_emulator import RuntimeEmulator

GOLDEN: dict[str, Any] = json.loads((ARTIFACTS / "golden.json").read_text())
CASES = GOLDEN["cases"]
TOL = GOLDEN["tolerance"]


def _api_body(result: Any) -> tuple[int, Any]:
    """(statusCode, parsed body) of an API Gateway proxy result."""
    assert isinstance(result, dict) and "statusCode" in result, f"not an API Gateway proxy result: {result!r:.300}"
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return int(result["statusCode"]), json.loads(raw)


def _assert_golden(case: dict[str, Any], actual: Any, via: str) -> None:
    ok, diff, detail = compare(case["response"], actual, TOL["atol"], TOL["rtol"])
    assert ok, f"{case['name']} via {via}: {detail} (max |diff| {diff:.3g}); answer {json.dumps(actual)[:300]}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_as_direct_invoke(emulator: RuntimeEmulator, case: dict[str, Any]) -> None:
    answer = emulator.invoke(case["request"])
    assert answer.status == 200, f"emulator status {answer.status}: {answer.body}\n{emulator.log()}"
    _assert_golden(case, answer.body, "direct invoke")


API_EVENTS: dict[str, Callable[[Any], dict[str, Any]]] = {"http_api_v2": http_api_event, "rest_api_v1": rest_api_event}


@pytest.mark.parametrize("api", sorted(API_EVENTS))
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_through_api_gateway_event(emulator: RuntimeEmulator, case: dict[str, Any], api: str) -> None:
    answer = emulator.invoke(API_EVENTS[api](case["request"]))
    assert answer.status == 200, f"emulator status {answer.status}: {answer.body}\n{emulator.log()}"
    status, body = _api_body(answer.body)
    assert status == 200, f"{case['name']} via {api}: HTTP {status}: {body}"
    _assert_golden(case, body, api)


def test_warm_invocations_are_fast(emulator: RuntimeEmulator) -> None:
    """After the first call the model is loaded: a warm call costs milliseconds, not a cold start."""
    emulator.invoke(CASES[0]["request"])
    answer = emulator.invoke(CASES[0]["request"])
    assert answer.seconds < 1.0, f"a warm invoke took {answer.seconds:.2f} s"

"""Failures as Lambda reports them: bad artifacts, an init crash, a timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ARTIFACTS
from tests.support.api_events import http_api_event
from tests.support.runtime_emulator import RuntimeEmulator

GOLDEN: dict[str, Any] = json.loads((ARTIFACTS / "golden.json").read_text())
REQUEST = GOLDEN["cases"][0]["request"]


def _start(rie: Path, tmp_path: Path, env: dict[str, str]) -> RuntimeEmulator:
    return RuntimeEmulator(rie, tmp_path / "emulator.log", env=env)


def test_tampered_artifact_is_refused_and_named(rie: Path, artifacts_copy: Path, tmp_path: Path) -> None:
    """A changed preprocessing.json must never serve: the answer names the file, over every path."""
    pre = artifacts_copy / "preprocessing.json"
    pre.write_text(pre.read_text().replace('"mean"', '"mean" ', 1))
    with _start(rie, tmp_path, {"MODEL_DIR": str(artifacts_copy)}) as emulator:
        direct = emulator.invoke(REQUEST)
        assert direct.status == 200, emulator.log()
        assert direct.body["errorType"] == "ModelUnavailable", direct.body
        assert json.loads(direct.body["errorMessage"])["status"] == 503
        assert "preprocessing.json" in direct.body["errorMessage"], direct.body
        api = emulator.invoke(http_api_event(REQUEST)).body
        assert api["statusCode"] == 503, api
        assert "preprocessing.json" in api["body"], api["body"]


def test_init_crash_is_reported_as_lambda_reports_it(rie: Path, tmp_path: Path) -> None:
    """A setting the function cannot run with fails the init; Lambda answers with the error type."""
    env = {"INPUT_PREFIX": "data/", "OUTPUT_PREFIX": "data/predictions/"}  # would trigger itself
    with _start(rie, tmp_path, env) as emulator:
        answer = emulator.invoke(REQUEST)
        assert answer.status == 502, f"status {answer.status}: {answer.body}"
        assert answer.body["errorType"] == "SettingsError", answer.body
        assert "OUTPUT_PREFIX" in answer.body["errorMessage"], answer.body
        assert "INIT RTDONE(status: error)" in emulator.log(), emulator.log()


def test_cold_model_load_past_the_timeout_times_out_then_recovers(rie: Path, tmp_path: Path) -> None:
    """A 1 s timeout with TensorFlow's cold load (~3 s) in the first request: 'Task timed out'.
    The next call starts a fresh runtime, and a request that needs no model is answered."""
    env = {"AWS_LAMBDA_FUNCTION_TIMEOUT": "1", "SERVING_RUNTIME": "tensorflow"}
    with _start(rie, tmp_path, env) as emulator:
        timed_out = emulator.invoke(REQUEST)
        assert timed_out.body == "Task timed out after 1.00 seconds", (
            f"status {timed_out.status}, body {timed_out.body}\n{emulator.log()}"
        )
        health = emulator.invoke(http_api_event(None, path="/v2/health/live", method="GET"))
        assert health.status == 200 and health.body["statusCode"] == 200, f"{health.body}\n{emulator.log()}"
        assert emulator.log().count("INIT START") == 2, "the call after a timeout should start a fresh runtime"


def test_an_invalid_direct_invoke_fails_the_invocation_with_a_typed_error_and_no_internals(
    rie: Path, tmp_path: Path
) -> None:
    """Step Functions' Catch and Retry see a failed invocation by its errorType; the caller sees the reason
    as JSON, and of the stack only the entry point's one frame (Lambda's Python runtime always adds it)."""
    bad = {"instances": [{**REQUEST["instances"][0], "contract_type": "lifetime"}]}
    with _start(rie, tmp_path, {}) as emulator:
        answer = emulator.invoke(bad)
        assert answer.status == 200, emulator.log()
        assert answer.body["errorType"] == "InvalidInput", answer.body
        error = json.loads(answer.body["errorMessage"])
        assert (error["status"], error["code"]) == (422, "invalid_input")
        assert error["details"][0]["feature"] == "contract_type" and "lifetime" not in answer.body["errorMessage"]
        trace = "".join(answer.body.get("stackTrace") or [])
        assert trace.count("File ") <= 1 and "handler/core" not in trace and "site-packages" not in trace, trace
        returned = emulator.invoke(REQUEST)  # the next, valid invoke is answered as usual
        assert "predictions" in returned.body, returned.body


def test_direct_errors_return_answers_the_error_body_instead(rie: Path, tmp_path: Path) -> None:
    bad = {"instances": [{**REQUEST["instances"][0], "contract_type": "lifetime"}]}
    with _start(rie, tmp_path, {"DIRECT_ERRORS": "return"}) as emulator:
        answer = emulator.invoke(bad)
        assert answer.body["status"] == 422 and answer.body["code"] == "invalid_input", answer.body
        assert "errorType" not in answer.body

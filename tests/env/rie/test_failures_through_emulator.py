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


def test_tampered_artifact_is_refused_and_named_in_the_log(rie: Path, artifacts_copy: Path, tmp_path: Path) -> None:
    """A changed preprocessing.json must never serve: every path answers 503 with the request id, and the log
    (not the answer, which says what happened in general) names the file."""
    pre = artifacts_copy / "preprocessing.json"
    pre.write_text(pre.read_text().replace('"mean"', '"mean" ', 1))
    with _start(rie, tmp_path, {"MODEL_DIR": str(artifacts_copy)}) as emulator:
        direct = emulator.invoke(REQUEST)
        error = direct.json_object()
        assert direct.status == 200 and error.get("errorType") == "ModelUnavailable", f"{direct}\n{emulator.log()}"
        message = json.loads(error["errorMessage"])
        assert (message["status"], message["code"]) == (503, "artifacts_invalid") and message["request_id"], message
        api = emulator.invoke(http_api_event(REQUEST))
        result = api.json_object()
        assert result.get("statusCode") == 503 and "artifacts_invalid" in str(result.get("body")), str(api)
        for answer in (error["errorMessage"], str(result.get("body"))):
            assert "preprocessing.json" not in answer and str(artifacts_copy) not in answer, answer
        assert "preprocessing.json does not match manifest.json" in emulator.full_log(), emulator.log()


def test_init_crash_is_reported_as_lambda_reports_it(rie: Path, tmp_path: Path) -> None:
    """A setting the function cannot run with fails the init; Lambda answers with the error type."""
    env = {"INPUT_PREFIX": "data/", "OUTPUT_PREFIX": "data/predictions/"}  # would trigger itself
    with _start(rie, tmp_path, env) as emulator:
        answer = emulator.invoke(REQUEST)
        error = answer.json_object()
        assert answer.status == 502 and error.get("errorType") == "SettingsError", f"{answer}\n{emulator.log()}"
        assert "OUTPUT_PREFIX" in error.get("errorMessage", ""), str(answer)
        assert "INIT RTDONE(status: error)" in emulator.full_log(), emulator.log()


# The emulator counts the init of a runtime it restarts after a timeout in the next call's time, so the
# timeout must hold that init (0.3 s on an idle 2-core machine; over 1 s at a load average of 3-6,
# where a 1 s timeout failed) with a wide margin. The model load is made to outlast it on any machine
# by a custom-object module that sleeps on import (tests/env/rie/slow_model_load.py): TensorFlow's own cold
# load (2 s idle) is too close to any timeout that leaves the init room.
TIMEOUT_SECONDS = 10


def test_cold_model_load_past_the_timeout_times_out_then_recovers(rie: Path, tmp_path: Path) -> None:
    """A first request whose cold model load runs past the function timeout gets 'Task timed out'; the
    next call starts a fresh runtime, and a request that needs no model is answered."""
    env = {
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(TIMEOUT_SECONDS),
        "SERVING_RUNTIME": "tensorflow",
        "CUSTOM_OBJECT_MODULES": "handler.custom_objects,tests.env.rie.slow_model_load",
    }
    with _start(rie, tmp_path, env) as emulator:
        timed_out = emulator.invoke(REQUEST)
        assert timed_out.body == f"Task timed out after {TIMEOUT_SECONDS}.00 seconds", f"{timed_out}\n{emulator.log()}"
        assert timed_out.seconds >= TIMEOUT_SECONDS, str(timed_out)
        # The init had finished: the timeout fell in the request, whose first act is the model's cold load.
        log = emulator.full_log()
        assert -1 < log.find("INIT RTDONE(status: success)") < log.find("Reset initiated: Timeout"), emulator.log()
        health = emulator.invoke(http_api_event(None, path="/v2/health/live", method="GET"))
        result = health.json_object()
        assert health.status == 200 and result.get("statusCode") == 200, f"{health}\n{emulator.log()}"
        assert json.loads(result["body"]) == {"live": True}, str(health)
        inits = emulator.full_log().count("INIT START")
        assert inits == 2, f"{inits} runtime inits: the call after a timeout should start one fresh runtime"


def test_an_invalid_direct_invoke_fails_the_invocation_with_a_typed_error_and_no_internals(
    rie: Path, tmp_path: Path
) -> None:
    """Step Functions' Catch and Retry see a failed invocation by its errorType; the caller sees the reason
    as JSON, and of the stack only the entry point's one frame (Lambda's Python runtime always adds it)."""
    bad = {"instances": [{**REQUEST["instances"][0], "contract_type": "lifetime"}]}
    with _start(rie, tmp_path, {}) as emulator:
        answer = emulator.invoke(bad)
        failure = answer.json_object()
        assert answer.status == 200 and failure.get("errorType") == "InvalidInput", f"{answer}\n{emulator.log()}"
        error = json.loads(failure["errorMessage"])
        assert (error["status"], error["code"]) == (422, "invalid_input"), str(answer)
        assert error["details"][0]["feature"] == "contract_type", str(answer)
        assert "lifetime" not in failure["errorMessage"], str(answer)
        trace = "".join(failure.get("stackTrace") or [])
        assert trace.count("File ") <= 1 and "handler/core" not in trace and "site-packages" not in trace, trace
        returned = emulator.invoke(REQUEST)  # the next, valid invoke is answered as usual
        assert "predictions" in returned.json_object(), str(returned)


def test_direct_errors_return_answers_the_error_body_instead(rie: Path, tmp_path: Path) -> None:
    bad = {"instances": [{**REQUEST["instances"][0], "contract_type": "lifetime"}]}
    with _start(rie, tmp_path, {"DIRECT_ERRORS": "return"}) as emulator:
        answer = emulator.invoke(bad)
        body = answer.json_object()
        assert (body.get("status"), body.get("code")) == (422, "invalid_input"), str(answer)
        assert "errorType" not in body, str(answer)

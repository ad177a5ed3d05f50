"""Tracing: X-Ray where Lambda traces, and no X-Ray SDK import (0.4 s of cold start) where it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
from handler.observability import capture_lambda_handler, tracing_enabled
def handler(event, context):
    return "ok"
wrapped = capture_lambda_handler(handler)
print(json.dumps({"enabled": tracing_enabled(), "wrapped": wrapped is not handler,
                  "xray": "aws_xray_sdk.core" in sys.modules}))
"""


def _probe(env: dict[str, str]) -> dict[str, bool]:
    base = {k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT")}
    run = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, bool] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_outside_lambda_the_handler_is_not_wrapped_and_xray_is_not_imported() -> None:
    assert _probe({}) == {"enabled": False, "wrapped": False, "xray": False}


def test_tracing_can_be_turned_off_in_lambda() -> None:
    assert _probe({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"})["wrapped"] is False


def test_in_lambda_the_handler_is_traced_with_xray() -> None:
    assert _probe({"LAMBDA_TASK_ROOT": "/var/task"}) == {"enabled": True, "wrapped": True, "xray": True}

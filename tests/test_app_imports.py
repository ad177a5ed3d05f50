"""What a cold start imports (issue 24), checked in fresh processes by the modules loaded, never by a clock.

The init (`import handler.app`) reads the settings and imports Powertools' logger and metrics, nothing of the
model: not numpy, not the core. The first HTTP prediction then imports what it needs, and not Powertools'
resolvers (every resolver and event class Powertools has, AppSync's asyncio among them), the OpenAPI models and
pydantic, boto3 or pyarrow; on LiteRT not importlib.metadata either (TensorFlow imports it, and asyncio).
/openapi.json still answers afterwards, with the routes. The times these save are `make bench`'s
(benchmarks/cold.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
from pathlib import Path
from tests.support.http_events import http_event  # the standard library only, as this script before the app

WATCHED = {
    "numpy": "numpy", "the core": "handler.core.service", "TensorFlow": "tensorflow", "Keras": "keras",
    "LiteRT": "ai_edge_litert", "pydantic": "pydantic", "pyarrow": "pyarrow", "boto3": "boto3",
    "Powertools' resolvers": "aws_lambda_powertools.event_handler",
    "Powertools' OpenAPI": "aws_lambda_powertools.event_handler.openapi",
    "the OpenAPI models": "handler.triggers.http.openapi", "importlib.metadata": "importlib.metadata",
    "asyncio": "asyncio",
}
case = json.loads(Path("model_artifacts/churn/golden.json").read_text())["cases"][0]

class Context:
    function_name, function_version, memory_limit_in_mb = "cold", "$LATEST", 1024
    invoked_function_arn, aws_request_id = "arn:aws:lambda:us-east-1:123456789012:function:cold", "cold"

    def get_remaining_time_in_millis(self):
        return 30_000

def loaded():
    return sorted(what for what, module in WATCHED.items() if module in sys.modules)

import handler.app as app

seen = {"init": loaded()}
answer = app.lambda_handler(http_event("http", "POST", "/v1/models/churn:predict", case["request"]), Context())
seen["first prediction"] = loaded()
document = app.lambda_handler(http_event("http", "GET", "/openapi.json"), Context())
seen["openapi"] = loaded()
assert answer["statusCode"] == 200, answer
from tests.support import zoo  # numpy: only now

zoo.check_v1("churn", case, json.loads(answer["body"]), "the first prediction of a fresh process")
print("RESULT " + json.dumps({
    "seen": seen, "openapi": [document["statusCode"], sorted(json.loads(document["body"]).get("paths", {}))]
}))
"""


@pytest.mark.parametrize("runtime", ["litert", "tensorflow"])
def test_the_init_imports_nothing_of_the_model_and_the_first_prediction_only_what_it_needs(runtime: str) -> None:
    env = {
        **os.environ,
        "MODEL_DIR": str(ROOT / "model_artifacts" / "churn"),
        "SERVING_RUNTIME": runtime,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])
    seen = result["seen"]
    assert seen["init"] == [], f"importing handler.app imported {seen['init']}"
    if runtime == "litert":
        assert seen["first prediction"] == ["LiteRT", "numpy", "the core"], seen["first prediction"]
    else:  # TensorFlow imports asyncio and importlib.metadata itself
        never = {"pydantic", "pyarrow", "boto3", "Powertools' resolvers", "Powertools' OpenAPI", "the OpenAPI models"}
        assert {"Keras", "TensorFlow", "numpy", "the core"} <= set(seen["first prediction"]), seen["first prediction"]
        assert not never & set(seen["first prediction"]), seen["first prediction"]

    status, paths = result["openapi"]
    assert status == 200 and "/v1/models/{name}:predict" in paths and "/v2/models/{name}/infer" in paths, paths
    assert "Powertools' OpenAPI" in seen["openapi"] and "pydantic" in seen["openapi"], seen["openapi"]

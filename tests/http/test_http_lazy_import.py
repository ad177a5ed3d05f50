"""Importing the app and answering health/metadata never imports TensorFlow; a prediction does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from http_events import http_event
from handler.local_server import LocalContext
import handler.app as app

seen = {"after_import": "tensorflow" in sys.modules}
statuses = []
for path in ("/v2/health/live", "/v2/health/ready", "/v1/models/churn", "/v1/models/churn/metadata",
             "/v2/models/churn", "/openapi.json"):
    statuses.append(app.lambda_handler(http_event("http", "GET", path), LocalContext())["statusCode"])
seen["after_metadata"] = "tensorflow" in sys.modules
seen["model_loaded_after_metadata"] = app.service.model.loaded
golden = app.service.artifacts.golden()["cases"][0]["request"]
response = app.lambda_handler(http_event("http", "POST", "/predict", golden), LocalContext())
statuses.append(response["statusCode"])
seen["after_prediction"] = "tensorflow" in sys.modules
print("RESULT " + json.dumps({"seen": seen, "statuses": statuses, "runtime": app.service.runtime}))
"""


def test_tensorflow_is_imported_by_the_first_prediction_only() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "SERVING_RUNTIME": "tensorflow",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["runtime"] == "tensorflow"
    assert result["statuses"] == [200] * 7, result
    assert result["seen"] == {
        "after_import": False,
        "after_metadata": False,
        "model_loaded_after_metadata": False,
        "after_prediction": True,
    }
    # The request that loaded the model reports how long the load took.
    assert '"ModelLoadTime"' in done.stdout

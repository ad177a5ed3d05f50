"""Importing the app and answering health/metadata never imports TensorFlow; a prediction does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, os, sys
from pathlib import Path
from http_events import http_event
from handler.local_server import LocalContext
import handler.app as app

name = Path(os.environ["MODEL_DIR"]).name
seen = {"after_import": "tensorflow" in sys.modules}
statuses = []
for path in ("/v2/health/live", "/v2/health/ready", f"/v1/models/{name}", f"/v1/models/{name}/metadata",
             f"/v2/models/{name}", f"/v2/models/{name}/ready", "/openapi.json"):
    statuses.append(app.lambda_handler(http_event("http", "GET", path), LocalContext())["statusCode"])
seen["after_metadata"] = "tensorflow" in sys.modules
seen["model_loaded_after_metadata"] = app.function.service.model.loaded
request = json.loads((Path(os.environ["MODEL_DIR"]) / "golden.json").read_text())["cases"][0]["request"]
response = app.lambda_handler(http_event("http", "POST", "/predict", request), LocalContext())
statuses.append(response["statusCode"])
seen["after_prediction"] = "tensorflow" in sys.modules
print("RESULT " + json.dumps({"seen": seen, "statuses": statuses, "runtime": app.function.service.runtime}))
"""


@pytest.mark.parametrize("model", ["churn", "recommender"])
def test_tensorflow_is_imported_by_the_first_prediction_only(model: str) -> None:
    env = {
        **os.environ,
        "MODEL_DIR": str(ROOT / "model_artifacts" / model),
        "PYTHONPATH": str(ROOT / "tests" / "support"),
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
    assert result["statuses"] == [200] * 8, result
    assert result["seen"] == {
        "after_import": False,
        "after_metadata": False,
        "model_loaded_after_metadata": False,
        "after_prediction": True,
    }
    # The request that loaded the model reports how long the load took.
    assert '"ModelLoadTime"' in done.stdout

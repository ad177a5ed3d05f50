"""Functions that serve only HTTP (and direct invokes, SQS, Map batches) never import pyarrow; an S3 file does.

pyarrow is in the image for the S3 path (about 170 MB installed and tens of ms to import): a cold
HTTP request must not pay for it.
"""

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
from tests.conftest import LambdaContext
from tests.support.api_events import http_api_event
from tests.support.batches import batch_event
import handler.app as app

golden = json.loads((Path(os.environ["MODEL_DIR"]) / "golden.json").read_text())["cases"]
request = golden[0]["request"]
seen = {"after_import": "pyarrow" in sys.modules}
ready = http_api_event(None, path="/v2/health/ready", method="GET")
answers = [app.lambda_handler(ready, LambdaContext())["statusCode"]]
predict = http_api_event(request, path="/v1/models/churn:predict")
answers.append(app.lambda_handler(predict, LambdaContext())["statusCode"])
seen["after_http_prediction"] = "pyarrow" in sys.modules
answers.append(sorted(app.lambda_handler(request, LambdaContext())))
answers.append(sorted(app.lambda_handler(batch_event(request["instances"]), LambdaContext())))
seen["after_direct_and_batch"] = "pyarrow" in sys.modules
from handler.triggers.s3 import job as s3  # what the first S3 event imports
seen["after_s3_module"] = "pyarrow" in sys.modules
print("RESULT " + json.dumps({"seen": seen, "answers": answers}))
"""


@pytest.mark.parametrize("runtime", ["litert", "tensorflow"])
def test_a_cold_http_request_leaves_pyarrow_unimported(runtime: str) -> None:
    env = {
        **os.environ,
        "MODEL_DIR": str(ROOT / "model_artifacts" / "churn"),
        "SERVING_RUNTIME": runtime,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["answers"] == [200, 200, ["predictions"], ["errors", "model_version", "predictions"]], result
    assert result["seen"] == {
        "after_import": False,
        "after_http_prediction": False,
        "after_direct_and_batch": False,
        "after_s3_module": True,
    }

"""The KServe SDK (kserve, written by others) against `python -m handler serve`, with its REST client speaking
KServe's v1 protocol (RESTConfig(protocol="v1")): liveness (`GET /`), readiness (`GET /v1/models/{name}`'s
`ready`) and predict, which must give every golden case of every model, whatever its layout.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import zoo
from tests.support.clients import clients_python, serving

SCRIPT = Path(__file__).parent / "kserve_script.py"


def _run_client(url: str, name: str) -> dict[str, Any]:
    job = {"url": url, "model": name, "cases": [{"name": c["name"], "request": c["request"]} for c in zoo.cases(name)]}
    done = subprocess.run(
        [str(clients_python()), str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the KServe client failed:\n{done.stderr[-3000:]}"
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


@pytest.mark.parametrize("name", zoo.MODELS)
def test_the_kserve_v1_client_is_live_ready_and_gets_golden_answers(name: str) -> None:
    with serving(zoo.model_dir(name)) as url:
        seen = _run_client(url, name)
    assert seen["live"] is True, seen["live"]
    assert seen["model_ready"] is True, "is_model_ready did not find our model ready"
    unknown = seen["unknown_model_ready"]
    assert unknown["status"] == 404 and unknown["body"]["code"] == "not_found", unknown
    assert sorted(seen["cases"]) == sorted(c["name"] for c in zoo.cases(name))
    for case in zoo.cases(name):
        zoo.check_v1(name, case, seen["cases"][case["name"]], "the KServe SDK's v1 REST client")

"""The Triton HTTP client (tritonclient[http], written by others) against `python -m handler serve`.

With its defaults it sends and asks for binary tensor data (the OIP binary extension); with
binary_data=False it speaks JSON. Both must give every golden case of every model, the health
and metadata calls must say what the spec says, and the version we serve must be ready. Its calls
of Triton's extensions must work too: get_model_config (the manifest's tensors), get_model_repository_index
(the model, READY) and get_inference_statistics, whose counts grow by exactly the inferences made.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import zoo
from tests.support.clients import clients_python, serving

SCRIPT = Path(__file__).parent / "triton_script.py"
# (binary inputs, binary outputs): the client's defaults, all JSON, and each mixed way.
MODES = [(True, None), (False, False), (True, False), (False, True)]


def _cases(name: str) -> list[dict[str, Any]]:
    """Golden cases with named rows, as the v2 tensors a client builds from them."""
    out = []
    for case in zoo.cases(name):
        rows = zoo.named_rows(case)
        body = zoo.v2_body(name, rows) if rows else None
        if body is not None:
            out.append({"case": case, "inputs": body["inputs"]})
    return out


def _run_client(url: str, name: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    job = {
        "url": url,
        "model": name,
        "version": zoo.manifest(name)["model"]["version"],
        "cases": [
            {"name": f"{c['case']['name']}|{bi}|{bo}", "inputs": c["inputs"], "binary_in": bi, "binary_out": bo}
            for c in cases
            for bi, bo in MODES
        ],
    }
    done = subprocess.run(
        [str(clients_python()), str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the Triton client failed:\n{done.stderr[-3000:]}"
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


@pytest.mark.parametrize("name", zoo.MODELS)
def test_the_triton_client_gets_golden_answers_binary_and_json(name: str) -> None:
    cases = _cases(name)
    assert cases, f"{name} has no golden case with named rows to send"
    with serving(zoo.model_dir(name)) as url:
        seen = _run_client(url, name, cases)
    assert seen["live"] is True and seen["ready"] is True
    assert seen["server"]["name"] == "skewless" and "binary_tensor_data" in seen["server"]["extensions"]
    assert seen["model_ready"] is True, "the version we serve is not ready for the client"
    assert seen["model_ready_unknown_version"] is False
    assert seen["metadata"]["name"] == name and seen["metadata"]["versions"] == [zoo.manifest(name)["model"]["version"]]
    assert [o["name"] for o in seen["metadata"]["outputs"]] == zoo.output_names(name)
    _check_extensions(name, seen)
    _check_statistics(name, cases, seen)
    for c in cases:
        case = c["case"]
        for bi, bo in MODES:
            got = seen["cases"][f"{case['name']}|{bi}|{bo}"]
            tensors = [{"name": n, "shape": t["shape"], "data": t["data"]} for n, t in got.items()]
            zoo.check_v2(name, case, {"outputs": tensors}, f"tritonclient (binary in {bi}, out {bo})")
            for n, t in got.items():
                assert np.isfinite(t["data"]).all(), f"{name}/{case['name']}: {n} not finite"


def _check_extensions(name: str, seen: dict[str, Any]) -> None:
    """The model configuration and repository index as the client returns them, against the manifest."""
    sig = zoo.manifest(name)["signature"]
    config = seen["config"]
    assert config == seen["config_latest"], "the version's config differs from the model's"
    assert (config["name"], config["max_batch_size"]) == (name, 1024), config  # MAX_BATCH_SIZE's default
    for side, specs in (("input", sig["features"]), ("output", sig["outputs"])):
        # Triton's dims are per example with max_batch_size > 0; a scalar is [1] reshaped to [].
        want = [(s["name"], [-1 if d is None else d for d in s["shape"]] or [1]) for s in specs]
        assert [(t["name"], t["dims"]) for t in config[side]] == want, (side, config[side])
    unknown = seen["config_unknown_version"]
    assert unknown["status"] == "404" and "version 999 of model" in unknown["message"], unknown
    assert seen["index"] == [{"name": name, "version": "1", "state": "READY"}], seen["index"]


def _check_statistics(name: str, cases: list[dict[str, Any]], seen: dict[str, Any]) -> None:
    """Every case was inferred once per mode: the counts grow by exactly that, and nothing failed."""
    (before,), (after,) = seen["stats_before"]["model_stats"], seen["stats_after"]["model_stats"]
    calls = len(cases) * len(MODES)
    examples = sum(len(c["case"]["expected"][zoo.output_names(name)[0]]) for c in cases) * len(MODES)
    assert (after["name"], after["version"]) == (name, "1"), after
    assert after["inference_count"] - before["inference_count"] == examples, (before, after)
    assert after["execution_count"] - before["execution_count"] == calls, (before, after)
    grown = {
        k: after["inference_stats"][k]["count"] - before["inference_stats"][k]["count"] for k in ("success", "fail")
    }
    assert grown == {"success": calls, "fail": 0}, grown
    assert after["inference_stats"]["success"]["ns"] > before["inference_stats"]["success"]["ns"]
    # Nothing was inferred between these three calls: the model's, the version's and every model's are one.
    assert seen["stats_model"]["model_stats"] == seen["stats_all"]["model_stats"] == [after]


def test_the_triton_client_gets_golden_answers_with_churns_one_tensor_of_rows() -> None:
    """churn's documented one-tensor form (`features`, [n, 12] BYTES, numbers as their text), binary by default."""
    names = zoo.feature_names("churn")
    cases = []
    for case in zoo.cases("churn"):
        rows = zoo.named_rows(case)
        if not rows or any(isinstance(v, dict) for r in rows for v in r.values()):
            continue
        data = [str(float(r[n])) if not isinstance(r[n], str) else r[n] for r in rows for n in names]
        tensor = {"name": "features", "shape": [len(rows), len(names)], "datatype": "BYTES", "data": data}
        cases.append({"case": case, "inputs": [tensor]})
    assert len(cases) > 10, "churn's golden cases give too few named rows"
    with serving(zoo.model_dir("churn")) as url:
        seen = _run_client(url, "churn", cases)
    for c in cases:
        for bi, bo in MODES:
            got = seen["cases"][f"{c['case']['name']}|{bi}|{bo}"]
            tensors = [{"name": n, "shape": t["shape"], "data": t["data"]} for n, t in got.items()]
            zoo.check_v2("churn", c["case"], {"outputs": tensors}, f"tritonclient features tensor (binary {bi}, {bo})")

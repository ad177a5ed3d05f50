"""The serving core answers every golden request exactly as the training process did."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from handler.core.golden import compare, replay
from handler.core.service import Service
from tests.conftest import ARTIFACTS, ROOT


def _case(golden: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in golden["cases"] if c["name"] == name)


def test_golden_file_covers_every_way_clients_send_data(golden: dict[str, Any]) -> None:
    names = {c["name"] for c in golden["cases"]}
    assert len(names) >= 30
    for required in (
        "named_features_shuffled_keys_0",
        "ordered_list_rows_0",
        "single_example_columnar_named",
        "ints_where_floats_expected_0",
        "numeric_strings",
        "unseen_payment_method",
        "batch_of_1",
        "batch_of_100",
    ):
        assert required in names
    sizes = {len(c["request"]["instances"]) for c in golden["cases"] if "instances" in c["request"]}
    assert {1, 100} <= sizes


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_every_golden_case_passes_through_the_serving_core(
    runtime: str, request: pytest.FixtureRequest, golden: dict[str, Any]
) -> None:
    service: Service = request.getfixturevalue("service" if runtime == "tensorflow" else "litert_service")
    assert service.runtime == runtime
    results = replay(golden, service.predict_v1)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.ok]
    assert not failed, "cases differ from training:\n" + "\n".join(failed)


def test_float64_int_and_shuffled_key_inputs_give_the_golden_outputs(service: Service, golden: dict[str, Any]) -> None:
    case = _case(golden, "batch_of_100")
    rows = case["request"]["instances"]
    tol = golden["tolerance"]
    rnd = random.Random(3)

    def shuffled(r: dict[str, Any]) -> dict[str, Any]:
        keys = list(r)
        rnd.shuffle(keys)
        return {k: r[k] for k in keys}

    def as_float64(r: dict[str, Any]) -> dict[str, Any]:
        return {k: float(np.float64(v)) if isinstance(v, float) else v for k, v in r.items()}

    def integral_as_int(r: dict[str, Any]) -> dict[str, Any]:
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in r.items()}

    for variant in (shuffled, as_float64, integral_as_int):
        answer = service.predict_v1({"instances": [variant(r) for r in rows]})
        ok, diff, detail = compare(case["response"], answer, tol["atol"], tol["rtol"])
        assert ok, f"{variant.__name__}: {detail}"


def test_outputs_do_not_depend_on_the_batch_a_row_arrives_in(service: Service, golden: dict[str, Any]) -> None:
    case = _case(golden, "batch_of_100")
    expected = np.asarray(case["response"]["predictions"])
    one_by_one = np.asarray(
        [service.predict_v1({"instances": [r]})["predictions"][0] for r in case["request"]["instances"]]
    )
    np.testing.assert_allclose(one_by_one, expected, atol=golden["tolerance"]["atol"], rtol=golden["tolerance"]["rtol"])


def test_no_batch_size_retraces_the_model(service: Service, golden: dict[str, Any]) -> None:
    rows = _case(golden, "batch_of_100")["request"]["instances"]
    for n in (1, 2, 7, 33, 100):
        service.predict_v1({"instances": rows[:n]})
    forward = service.model.load()
    assert forward.tracing_count() == 1  # type: ignore[attr-defined]


def test_verify_command_passes_and_predict_command_prints_the_v1_response(golden: dict[str, Any]) -> None:
    env = {**os.environ, "MODEL_DIR": str(ARTIFACTS)}
    run = subprocess.run([sys.executable, "-m", "handler", "verify"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"all {len(golden['cases'])} golden cases of 'churn' match training on litert" in run.stdout
    for runtime in ("tensorflow", "litert"):
        run = subprocess.run(
            [sys.executable, "-m", "handler", "verify", "--runtime", runtime],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and f"match training on {runtime}" in run.stdout, run.stdout + run.stderr

    case = _case(golden, "named_features_shuffled_keys_1")
    run = subprocess.run(
        [sys.executable, "-m", "handler", "predict", json.dumps(case["request"])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    ok, _, detail = compare(case["response"], json.loads(run.stdout), 1e-5, 1e-5)
    assert ok, detail


@pytest.mark.parametrize("body", ["{not json", '{"instances": [{"age": 3}]}'])
def test_predict_command_explains_a_bad_body(body: str) -> None:
    run = subprocess.run([sys.executable, "-m", "handler", "predict", body], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert "error" in json.loads(run.stdout)
    assert "Traceback" not in run.stdout + run.stderr

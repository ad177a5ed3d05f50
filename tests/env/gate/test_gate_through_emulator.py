"""The pre-traffic gate against the real function under the Lambda runtime interface emulator.

The gate compares the served answers with the committed golden.json (training's answers) in every
case. It must pass the committed artifacts of every model, and fail, naming every differing case,
a version whose served model is skewed: a preprocessing file changed, or a custom layer's argument
changed. The skewed copies are re-hashed in their manifest so that the function starts and serves
the skew instead of refusing a tampered file. The CodeDeploy side is a stand-in (tests/env/gate/standins.py).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.env.gate.conftest import HOOK_EVENT, VERSION_ARN, GateRun, rehash, rewrite_keras_config
from tests.support import zoo

TRIGGERS = ("direct", "http_api", "rest_api", "function_url", "map_batch")
TARGETS = [("churn", "auto"), ("churn", "tensorflow"), *((name, "auto") for name in zoo.ZOO)]


def _map_item_rows(request: Any) -> bool:
    """A Distributed Map item is one row keyed by input: requests sent as named rows, and nothing else."""
    rows = request.get("instances") if set(request) == {"instances"} else None
    return isinstance(rows, list) and bool(rows) and all(isinstance(row, dict) for row in rows)


def expected_answers(name: str) -> set[str]:
    """'<case> via <trigger>' for every golden case in every trigger shape that can carry it."""
    out = set()
    for case in zoo.cases(name):
        for trigger in TRIGGERS:
            if trigger != "map_batch" or _map_item_rows(case["request"]):
                out.add(f"{case['name']} via {trigger}")
    return out


def _reported(run: GateRun, status: str) -> None:
    want = [{**{k[0].lower() + k[1:]: v for k, v in HOOK_EVENT.items()}, "status": status}]
    assert run.statuses == want, f"CodeDeploy's stand-in received {run.statuses}, expected {want}\n{run.log[-4000:]}"


def _table_rows(log: str) -> dict[str, str]:
    """The gate's table of differing cases, read from its log: {'<case> via <trigger>': the row}."""
    rows = {}
    for line in re.split(r"[\r\n]+", log):
        match = re.match(r"\s*(\S+ via \S+)\s+DIFFERS\s", line)
        if match:
            rows[match.group(1)] = line
    return rows


@pytest.mark.parametrize(("name", "runtime"), TARGETS, ids=[f"{n}-{r}" for n, r in TARGETS])
def test_the_committed_artifacts_pass_the_gate_in_every_trigger_shape(
    run_gate: Callable[..., GateRun], name: str, runtime: str
) -> None:
    run = run_gate(zoo.model_dir(name), zoo.model_dir(name), {"SERVING_RUNTIME": runtime})
    _reported(run, "Succeeded")
    expected = expected_answers(name)
    assert run.summary["status"] == "Succeeded" and run.summary["differing"] == [], run.summary
    assert run.summary["answers_checked"] == len(expected), (run.summary, sorted(expected))
    # One invocation per answer, each naming the new version's qualified ARN (never $LATEST or the alias).
    assert run.asked == [VERSION_ARN] * len(expected), sorted(set(run.asked))
    assert f"all {len(expected)} answers of {VERSION_ARN} match training" in run.log, run.log[-3000:]


def test_the_gates_requests_are_kept_out_of_the_drift_watch(run_gate: Callable[..., GateRun]) -> None:
    """Every invocation says it is the gate (ClientContext.custom); the function answers it but keeps its golden rows
    out of its drift windows: with windows of 100 rows, the ~1,400 rows the gate sends for churn would close a dozen,
    and the function's log has not one FeatureDrift line."""
    run = run_gate(zoo.model_dir("churn"), zoo.model_dir("churn"), {"DRIFT_WINDOW": "100"})
    _reported(run, "Succeeded")
    custom = [json.loads(base64.b64decode(c))["custom"] if c else None for c in run.client_contexts]
    assert custom == [{"skewless": "deploy-gate"}] * len(expected_answers("churn")), custom[:3]
    assert "drift watch on" in run.function_log, run.function_log[-2000:]  # the watch runs, with windows of 100
    assert "FeatureDrift" not in run.function_log, "the gate's golden rows were counted as users' traffic"


def _assert_named_as_differing(run: GateRun, expected: set[str]) -> None:
    _reported(run, "Failed")
    assert set(run.summary["differing"]) == expected, sorted(expected ^ set(run.summary["differing"]))
    rows = _table_rows(run.log)
    assert set(rows) == expected, f"the logged table lacks {sorted(expected - set(rows))}\n{run.log[-3000:]}"
    # Answered, and answered differently: the version served the skew (a refused file would be a 503).
    for where, row in rows.items():
        assert "expected" in row and "Unanswered" not in row, f"{where}: {row}"


def test_a_changed_preprocessing_file_fails_the_gate_naming_the_cases(
    run_gate: Callable[..., GateRun], churn_copy: Path
) -> None:
    """Every churn request carries tenure_months, standardised with this mean: every answer moves, except
    where training's answer is a saturated sigmoid (values_outside_training_range: 0.99999976), which
    half a standard deviation of one feature moves by less than the 1e-5 tolerance."""
    (saturated,) = [c for c in zoo.cases("churn") if c["name"] == "values_outside_training_range"]
    assert saturated["expected"]["output_0"][0][0] > 0.99999, saturated["expected"]
    path = churn_copy / "preprocessing.json"
    pre = json.loads(path.read_text())
    (feature,) = [f for f in pre["features"] if f["name"] == "tenure_months"]
    feature["mean"] += 10.0  # about half a standard deviation (21.05) of training's tenure
    path.write_text(json.dumps(pre))
    rehash(churn_copy, "preprocessing.json")
    run = run_gate(churn_copy, zoo.model_dir("churn"))
    unmoved = {f"values_outside_training_range via {trigger}" for trigger in TRIGGERS}
    _assert_named_as_differing(run, expected_answers("churn") - unmoved)


def test_a_changed_custom_layer_argument_fails_the_gate_naming_every_case(
    run_gate: Callable[..., GateRun], churn_copy: Path
) -> None:
    """churn ends in Temperature(1.7): sigmoid(z / 2.5) differs from sigmoid(z / 1.7) for every logit z != 0.

    Served by TensorFlow from model.keras (the changed file); model.tflite keeps the trained graph.
    """

    def hotter(config: dict[str, Any]) -> None:
        (layer,) = [la for la in config["config"]["layers"] if la["class_name"] == "Temperature"]
        assert layer["config"]["temperature"] == 1.7, layer["config"]
        layer["config"]["temperature"] = 2.5

    rewrite_keras_config(churn_copy / "model.keras", hotter)
    rehash(churn_copy, "model.keras")
    run = run_gate(churn_copy, zoo.model_dir("churn"), {"SERVING_RUNTIME": "tensorflow"})
    _assert_named_as_differing(run, expected_answers("churn"))


def test_a_version_that_cannot_serve_fails_the_gate_with_its_errors(
    run_gate: Callable[..., GateRun], churn_copy: Path
) -> None:
    """A tampered file (not re-hashed): the version refuses to serve; every case is listed with the error."""
    path = churn_copy / "preprocessing.json"
    path.write_text(path.read_text().replace('"mean"', '"mean" ', 1))
    run = run_gate(churn_copy, zoo.model_dir("churn"))
    _reported(run, "Failed")
    rows = _table_rows(run.log)
    assert set(rows) == expected_answers("churn"), sorted(expected_answers("churn") ^ set(rows))
    direct = [row for where, row in rows.items() if where.endswith(" via direct")]
    assert all("the invocation failed: ModelUnavailable" in row for row in direct), direct[:2]
    http = [row for where, row in rows.items() if where.endswith(" via http_api")]
    # The answer's code, not the file: the version's own log names it, under the request id of the answer.
    assert all("HTTP 503" in row and "artifacts_invalid" in row for row in http), http[:2]
    assert all("preprocessing.json" not in row for row in http), http[:2]

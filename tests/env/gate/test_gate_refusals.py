"""What the gate fails without replaying anything: no proof, no traffic, and CodeDeploy is told.

The gate runs in this process here (`handler.deploy_gate.run`), with boto3 clients on 127.0.0.1: the
Lambda front (which knows only the version the test names) and CodeDeploy's stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from handler import deploy_gate
from tests.env.gate.conftest import (
    FAKE_CREDENTIALS,
    FUNCTION_NAME,
    HOOK_EVENT,
    VERSION,
    VERSION_ARN,
    GateRun,
    gate_env,
)
from tests.env.gate.standins import CodeDeployStandIn, LambdaFront, app_spec, serving
from tests.support import zoo
from tests.support.samcli import ROOT

UNQUALIFIED = VERSION_ARN.rsplit(":", 1)[0]


@pytest.fixture
def front() -> Iterator[LambdaFront]:
    """Knows version 7 only; nothing behind it answers (these tests must never get that far)."""
    lam = LambdaFront(VERSION_ARN, "http://127.0.0.1:9/nothing-listens-here")
    with serving(lam):
        yield lam


def _client(service: str, endpoint: str) -> Any:
    keys = {"aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **keys)


def _run(front: LambdaFront, standin: CodeDeployStandIn, **env: str) -> dict[str, Any]:
    environ = {**gate_env(front.endpoint, standin.endpoint, zoo.model_dir("churn")), **env}
    lam, codedeploy = _client("lambda", front.endpoint), _client("codedeploy", standin.endpoint)
    summary: dict[str, Any] = deploy_gate.run(HOOK_EVENT, environ, lam, codedeploy)
    return summary


def _failed_once(standin: CodeDeployStandIn) -> None:
    assert [s["status"] for s in standin.statuses()] == ["Failed"], standin.statuses()
    (status,) = standin.statuses()
    assert status["deploymentId"] == HOOK_EVENT["DeploymentId"]
    assert status["lifecycleEventHookExecutionId"] == HOOK_EVENT["LifecycleEventHookExecutionId"]


@pytest.mark.parametrize("arn", [UNQUALIFIED, f"{UNQUALIFIED}:$LATEST", f"{UNQUALIFIED}:live", ""])
def test_a_target_that_is_not_a_published_version_is_refused(
    front: LambdaFront, codedeploy_standin: CodeDeployStandIn, arn: str
) -> None:
    summary = _run(front, codedeploy_standin, TARGET_VERSION_ARN=arn)
    _failed_once(codedeploy_standin)
    assert "TARGET_VERSION_ARN" in summary["reason"] and "!Ref InferenceFunction.Version" in summary["reason"]
    assert front.asked == [], "nothing may be invoked before the target is known"


def test_a_deployment_to_another_version_than_configured_fails_naming_both(
    front: LambdaFront, codedeploy_standin: CodeDeployStandIn
) -> None:
    """The gate's configuration must name the version CodeDeploy shifts to, or it would prove the wrong one."""
    codedeploy_standin.app_spec = app_spec(FUNCTION_NAME, "7", "8")
    summary = _run(front, codedeploy_standin)
    _failed_once(codedeploy_standin)
    assert "shifts to version 8" in summary["reason"] and VERSION_ARN in summary["reason"], summary
    assert front.asked == []
    operations = [r.operation for r in codedeploy_standin.received]
    assert operations == ["GetDeployment", "PutLifecycleEventHookExecutionStatus"], operations


def test_a_version_the_gate_cannot_invoke_fails_with_lambdas_error(
    front: LambdaFront, codedeploy_standin: CodeDeployStandIn
) -> None:
    other = f"{UNQUALIFIED}:8"
    codedeploy_standin.app_spec = app_spec(FUNCTION_NAME, "7", "8")
    summary = _run(front, codedeploy_standin, TARGET_VERSION_ARN=other)
    _failed_once(codedeploy_standin)
    assert "ResourceNotFoundException" in summary["reason"], summary
    assert front.asked == [other], "the gate should stop at the first invocation Lambda refuses"


def test_golden_cases_that_do_not_match_their_manifest_fail_before_any_invocation(
    front: LambdaFront, codedeploy_standin: CodeDeployStandIn, churn_copy: Path
) -> None:
    path = churn_copy / "golden.json"
    golden = json.loads(path.read_text())
    golden["cases"][0]["expected"]["output_0"] = [[0.5]]
    path.write_text(json.dumps(golden))
    summary = _run(front, codedeploy_standin, GOLDEN_MODEL_DIR=str(churn_copy))
    _failed_once(codedeploy_standin)
    assert "cannot be trusted" in summary["reason"] and "golden.json" in summary["reason"], summary
    assert front.asked == []


def test_a_deployment_whose_appspec_names_no_version_is_checked_against_the_configured_one(
    run_gate: Callable[..., GateRun],
) -> None:
    """No AppSpec to cross-check (the stand-in sends none): the configured version is replayed and passes."""
    run = run_gate(zoo.model_dir("churn"), zoo.model_dir("churn"), spec=None)
    assert [s["status"] for s in run.statuses] == ["Succeeded"], run.log[-3000:]
    assert set(run.asked) == {VERSION_ARN}
    assert f"names no target version; checking {VERSION_ARN}" in run.log


def test_an_event_that_is_not_codedeploys_reports_nothing(
    front: LambdaFront, codedeploy_standin: CodeDeployStandIn
) -> None:
    environ = gate_env(front.endpoint, codedeploy_standin.endpoint, zoo.model_dir("churn"))
    lam, codedeploy = _client("lambda", front.endpoint), _client("codedeploy", codedeploy_standin.endpoint)
    with pytest.raises(ValueError, match="not a CodeDeploy lifecycle hook event"):
        deploy_gate.run({"DeploymentId": "d-1"}, environ, lam, codedeploy)
    assert codedeploy_standin.received == [] and front.asked == []


def test_the_guard_against_tensorflow_in_the_gates_emulator_works(no_tensorflow: Path) -> None:
    """tests/env/gate runs the gate with this folder first on PYTHONPATH: an import of TensorFlow would fail."""
    env = {**os.environ, "PYTHONPATH": str(no_tensorflow)}
    for name in ("tensorflow", "keras"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert done.returncode != 0 and "must not load TensorFlow or Keras" in done.stderr, done.stderr[-500:]
    done = subprocess.run(
        [sys.executable, "-c", "import handler.deploy_gate"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_version_and_golden_folder_are_read_from_the_environment() -> None:
    config = deploy_gate.GateConfig.from_env({"TARGET_VERSION_ARN": VERSION_ARN, "GOLDEN_MODEL_DIR": "/var/task/x"})
    assert (config.version, config.model_dir) == (VERSION, Path("/var/task/x"))
    with pytest.raises(deploy_gate.GateError, match="GOLDEN_MODEL_DIR is not set"):
        deploy_gate.GateConfig.from_env({"TARGET_VERSION_ARN": VERSION_ARN})

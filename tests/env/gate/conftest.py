"""The pre-traffic gate against the real function: both run under the Lambda runtime interface emulator.

`run_gate` starts the inference function (handler.app.lambda_handler) under one emulator, the
gate (handler.deploy_gate.lambda_handler, the image's other command) under another, and invokes the
gate with CodeDeploy's event. The gate's boto3 clients reach, through the SDK's own
AWS_ENDPOINT_URL_<SERVICE> variables:
- Lambda: `LambdaFront`, which forwards Invoke of the version's qualified ARN to the function's emulator;
- CodeDeploy: `CodeDeployStandIn`, a stand-in that records the status report (no local CodeDeploy exists).
The gate runs with `tensorflow` and `keras` made unimportable: if it imported either, it would fail.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.env.gate.standins import CodeDeployStandIn, LambdaFront, app_spec, serving
from tests.support import zoo
from tests.support.artifacts import rehash  # noqa: F401  (the suite's tests import it from here)
from tests.support.runtime_emulator import RuntimeEmulator
from tests.support.samcli import rie_binary

FUNCTION_NAME = "skewless-InferenceFunction-GateTest"
VERSION = "7"
VERSION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}:{VERSION}"
HOOK_EVENT = {"DeploymentId": "d-GATE0TEST", "LifecycleEventHookExecutionId": "hook-execution-0001"}
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "t"}
BLOCKED = ("tensorflow", "keras")
# What GetDeployment answers by default: a deployment of `live` from version 6 to the version under test.
DEFAULT_SPEC = app_spec(FUNCTION_NAME, "6", VERSION)


@dataclass
class GateRun:
    """One gate invocation: what it returned, what CodeDeploy's stand-in received, what it invoked, its log."""

    summary: Any
    statuses: list[dict[str, Any]]
    asked: list[str]
    log: str
    function_log: str
    client_contexts: list[str | None]


@pytest.fixture(scope="session")
def rie() -> Path:
    return rie_binary()


@pytest.fixture(scope="session")
def no_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that, first on PYTHONPATH, makes `import tensorflow` and `import keras` fail loudly."""
    folder = tmp_path_factory.mktemp("no-tensorflow")
    for name in BLOCKED:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('the pre-traffic gate imported {name}: it must not load TensorFlow or Keras')\n"
        )
    return folder


def gate_env(front: str, codedeploy: str, golden_dir: Path, target_arn: str = VERSION_ARN) -> dict[str, str]:
    """The gate's environment as the template sets it, and the SDK's endpoints pointed at 127.0.0.1."""
    return {
        "TARGET_VERSION_ARN": target_arn,
        "GOLDEN_MODEL_DIR": str(golden_dir),
        "AWS_ENDPOINT_URL_LAMBDA": front,
        "AWS_ENDPOINT_URL_CODEDEPLOY": codedeploy,
        "AWS_DEFAULT_REGION": "us-east-1",
        "NO_PROXY": "127.0.0.1,localhost",
        **FAKE_CREDENTIALS,
    }


@pytest.fixture
def run_gate(rie: Path, no_tensorflow: Path, tmp_path: Path) -> Callable[..., GateRun]:
    """Serve `model_dir` as the new version, run the gate on it against `golden_dir` (the committed one)."""

    def run(
        model_dir: Path, golden_dir: Path, function_env: dict[str, str] | None = None, spec: Any = DEFAULT_SPEC
    ) -> GateRun:
        standin = CodeDeployStandIn(app_spec=spec)
        env = {"MODEL_DIR": str(model_dir), "AWS_LAMBDA_FUNCTION_VERSION": VERSION, **(function_env or {})}
        with RuntimeEmulator(rie, tmp_path / "function.log", env) as function:
            front = LambdaFront(VERSION_ARN, function.url)
            with serving(front), serving(standin):
                genv = gate_env(front.endpoint, standin.endpoint, golden_dir)
                pythonpath = os.pathsep.join(p for p in (str(no_tensorflow), os.environ.get("PYTHONPATH")) if p)
                genv["PYTHONPATH"] = pythonpath
                genv["AWS_LAMBDA_FUNCTION_NAME"] = "skewless-pretraffic-gate"
                with RuntimeEmulator(
                    rie, tmp_path / "gate.log", genv, handler="handler.deploy_gate.lambda_handler"
                ) as gate:
                    answer = gate.invoke(HOOK_EVENT, timeout=600)
                    assert answer.status == 200, f"the gate's emulator answered {answer.status}: {answer.body}"
            function_log = (tmp_path / "function.log").read_text(errors="replace")
        gate_log = (tmp_path / "gate.log").read_text(errors="replace")
        return GateRun(answer.body, standin.statuses(), front.asked, gate_log, function_log, front.client_contexts)

    return run


@pytest.fixture
def churn_copy(tmp_path: Path) -> Path:
    """A private copy of the committed churn artifacts that a test skews (and re-hashes, so it serves)."""
    dst = tmp_path / "churn-skewed"
    shutil.copytree(zoo.model_dir("churn"), dst)
    return dst


def rewrite_keras_config(model_file: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change config.json inside a .keras archive, every other member kept byte for byte."""
    with zipfile.ZipFile(model_file) as zf:
        members = [(info, zf.read(info.filename)) for info in zf.infolist()]
    with zipfile.ZipFile(model_file, "w") as zf:
        for info, data in members:
            if info.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            zf.writestr(info, data)


@pytest.fixture
def codedeploy_standin() -> Iterator[CodeDeployStandIn]:
    standin = CodeDeployStandIn(app_spec=DEFAULT_SPEC)
    with serving(standin):
        yield standin

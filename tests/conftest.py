"""Shared fixtures: the committed artifacts, the golden cases, a Lambda context, event files."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "skewless-tests")

# The property tests draw new examples on every run here, but CI draws the same ones each time: a run that
# lands work must not turn on the luck of the draw (a failure found locally gets a pinned test of its own).
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

# Fixtures shared by several suites: the local S3/SQS server, the fault tools, Functions per model, Map batches.
pytest_plugins = ["tests.support.moto_s3", "tests.support.faults", "tests.support.functions", "tests.support.batches"]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "model_artifacts" / "churn"  # the reference model; tests.support.zoo has them all
EVENTS = ROOT / "events"


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    return json.loads((ARTIFACTS / "golden.json").read_text())


@pytest.fixture
def artifacts_copy(tmp_path: Path) -> Path:
    """A private copy of model_artifacts/ that a test may break."""
    dst = tmp_path / "model_artifacts"
    shutil.copytree(ARTIFACTS, dst)
    return dst


@dataclass
class LambdaContext:
    function_name: str = "skewless-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:skewless-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/skewless-test"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def load_event(name: str) -> dict[str, Any]:
    """An event file from events/, as AWS sends it."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data

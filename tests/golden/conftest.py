"""Services over the committed artifacts of every reference model, opened once per session and runtime."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.settings import Settings
from tests.support import zoo
from tests.support.artifacts import rehash  # noqa: F401  (the suite's tests import it from here)

ROOT = zoo.ROOT
RUNTIMES = ("tensorflow", "litert")


@pytest.fixture(scope="session")
def zoo_service() -> Callable[[str, str], Service]:
    """zoo_service(model, runtime): the serving core over model_artifacts/<model>, loaded on first use."""
    opened: dict[tuple[str, str], Service] = {}

    def get(name: str, runtime: str) -> Service:
        if (name, runtime) not in opened:
            service = open_service(Settings(model_dir=zoo.model_dir(name)), runtime=runtime)
            assert service.runtime == runtime
            opened[name, runtime] = service
        return opened[name, runtime]

    return get


@pytest.fixture(scope="session")
def service(zoo_service: Callable[[str, str], Service]) -> Service:
    """churn on TensorFlow (model.keras)."""
    return zoo_service("churn", "tensorflow")


def copy_model(name: str, dst: Path) -> Path:
    """A private copy of model_artifacts/<name> that a test may break."""
    shutil.copytree(zoo.model_dir(name), dst)
    return dst


def run_handler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m handler ARGS` from the project root, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "handler", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )

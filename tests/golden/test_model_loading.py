"""Lazy, once-per-process loading; PRELOAD_MODEL; integrity checks before any load."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.core.artifacts import Artifacts
from handler.core.model import LazyModel, load_tensorflow_forward
from handler.errors import ArtifactError, ModelLoadError
from handler.settings import Settings
from tests.golden.conftest import copy_model
from tests.support import zoo
from tests.support.artifacts import write_manifest

ROOT = zoo.ROOT
ARTIFACTS = zoo.model_dir("churn")


@contextmanager
def _captured(name: str, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture a logger even after Powertools stopped it propagating (once handler.app is imported)."""
    log = logging.getLogger(name)
    if log.propagate:  # the root handler of caplog already sees it
        yield
        return
    log.addHandler(caplog.handler)
    try:
        yield
    finally:
        log.removeHandler(caplog.handler)


PROBE = """
import json, sys
from handler.bootstrap import open_service
from handler.settings import Settings
service = open_service(Settings.from_env())
before = "tensorflow" in sys.modules
golden = json.load(open(sys.argv[1]))
service.predict_v1(golden["cases"][0]["request"])
print(json.dumps({"before": before, "after": "tensorflow" in sys.modules}))
"""


def _probe(env: dict[str, str], name: str = "churn") -> dict[str, bool]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(zoo.model_dir(name) / "golden.json")],
        cwd=ROOT,
        env={**os.environ, "MODEL_DIR": str(zoo.model_dir(name)), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, bool] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_opening_the_service_does_not_import_tensorflow_and_the_first_prediction_does() -> None:
    assert _probe({"PRELOAD_MODEL": "false", "SERVING_RUNTIME": "tensorflow"}) == {"before": False, "after": True}


def test_preload_model_loads_during_init() -> None:
    assert _probe({"PRELOAD_MODEL": "true", "SERVING_RUNTIME": "tensorflow"}) == {"before": True, "after": True}


@pytest.mark.parametrize("name", zoo.MODELS)
def test_the_litert_runtime_never_imports_tensorflow(name: str) -> None:
    probe = _probe({"PRELOAD_MODEL": "true", "SERVING_RUNTIME": "litert"}, name)
    assert probe == {"before": False, "after": False}


@pytest.fixture
def churn_copy(tmp_path: Path) -> Path:
    """A private copy of model_artifacts/churn that a test may break."""
    return copy_model("churn", tmp_path / "churn")


def _zeros(artifacts: Artifacts, n: int) -> dict[str, np.ndarray]:
    (spec,) = artifacts.signature.inputs
    (width,) = spec.shape
    assert width is not None
    return {spec.name: np.zeros((n, width), dtype=np.float32)}


def test_concurrent_first_calls_load_the_model_once() -> None:
    artifacts = Artifacts.open(ARTIFACTS)
    calls = []

    def counting_loader(a: Artifacts) -> Any:
        calls.append(threading.get_ident())
        return load_tensorflow_forward(a)

    model = LazyModel(artifacts, loader=counting_loader)
    x = _zeros(artifacts, 3)
    barrier = threading.Barrier(8)
    outputs: list[np.ndarray] = []

    def first_call() -> None:
        barrier.wait()
        outputs.append(model.load()(x)["output_0"])

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and model.loads == 1
    assert len(outputs) == 8 and all(np.array_equal(o, outputs[0]) for o in outputs)
    assert outputs[0].shape == (3, 1)


def test_a_failed_load_leaves_the_next_call_able_to_load() -> None:
    artifacts = Artifacts.open(ARTIFACTS)
    attempts = []

    def flaky_loader(a: Artifacts) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("interrupted")
        return load_tensorflow_forward(a)

    model = LazyModel(artifacts, loader=flaky_loader)
    with pytest.raises(TimeoutError):
        model.load()
    assert not model.loaded
    assert model.load()(_zeros(artifacts, 1))["output_0"].shape == (1, 1)


def test_a_tampered_artifact_is_refused_with_its_name(churn_copy: Path) -> None:
    with (churn_copy / "model.keras").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match=r"artifact model.keras does not match manifest.json"):
        open_service(Settings(model_dir=churn_copy))
    run = subprocess.run(
        [sys.executable, "-m", "handler", "verify"],
        cwd=ROOT,
        env={**os.environ, "MODEL_DIR": str(churn_copy)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "model.keras does not match" in run.stderr and "Traceback" not in run.stderr


def test_a_missing_artifact_is_refused_with_its_name(churn_copy: Path) -> None:
    (churn_copy / "preprocessing.json").unlink()
    with pytest.raises(ArtifactError, match="preprocessing.json .* is missing"):
        open_service(Settings(model_dir=churn_copy))


def test_a_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="make artifacts"):
        open_service(Settings(model_dir=tmp_path))


def test_a_library_version_differing_from_export_is_a_warning_logged_once(
    churn_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = json.loads((churn_copy / "manifest.json").read_text())
    manifest["versions"]["numpy"] = "1.26.0"
    write_manifest(churn_copy, manifest)
    with caplog.at_level(logging.WARNING, logger="skewless"), _captured("skewless", caplog):
        service = open_service(Settings(model_dir=churn_copy))
        service.predict_v1(json.loads((ARTIFACTS / "golden.json").read_text())["cases"][0]["request"])
    warnings = [r.getMessage() for r in caplog.records if "numpy" in r.getMessage()]
    assert warnings == ["library version differs from export: numpy 2.4.6 installed, model exported with 1.26.0"]


def test_auto_runtime_serves_litert_only_when_it_passed_the_golden_cases(
    churn_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert open_service(Settings(model_dir=churn_copy)).runtime == "litert"
    manifest = json.loads((churn_copy / "manifest.json").read_text())
    manifest["runtimes"]["litert"] = {"golden_passed": False, "reason": "conversion failed: op FancyOp unsupported"}
    write_manifest(churn_copy, manifest)
    with caplog.at_level(logging.INFO, logger="skewless"), _captured("skewless", caplog):
        assert open_service(Settings(model_dir=churn_copy)).runtime == "tensorflow"
    [line] = {r.getMessage() for r in caplog.records if "serving runtime: tensorflow" in r.getMessage()}
    assert "FancyOp" in line
    with pytest.raises(ModelLoadError, match="FancyOp"):
        open_service(Settings(model_dir=churn_copy), runtime="litert")

"""A user's model with custom code, exported by `python -m handler export` from a `.keras` file, and served
from a copy of the artifact in another folder: its code travels in code/, nothing names the module.

Every serving process here is fresh, runs from a folder that holds a decoy module of the same name (on its
sys.path, as `python -m` puts the current directory there), with neither PYTHONPATH nor CUSTOM_OBJECT_MODULES:
golden answers can only come from the artifact's own copy of the user's code.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.export.conftest import Exported
from tests.support.api_events import http_api_event
from tests.support.clients import serving
from tests.support.runtime_emulator import RuntimeEmulator
from tests.support.samcli import rie_binary
from tests.support.user_project import IMPORT_LOG_VARIABLE, assert_predictions, fresh_env

pytestmark = pytest.mark.slow

DECOY = '''"""Not the user's code: same module and class names, other arithmetic."""
import os

import keras

if os.environ.get("SKEWLESS_USER_IMPORT_LOG"):
    with open(os.environ["SKEWLESS_USER_IMPORT_LOG"], "a") as log:
        log.write("DECOY " + __file__ + "\\n")


@keras.saving.register_keras_serializable(package="skewless-user")
class Shift(keras.layers.Layer):
    def __init__(self, offset=0.0, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset, self.factor = offset, factor

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "factor": self.factor}
'''


@pytest.fixture(scope="module")
def elsewhere(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving processes' working directory: a decoy of the user's module, nothing else."""
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / f"{exported.project.module}.py").write_text(DECOY)
    return folder


def handler_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handler", *args],
        cwd=cwd,
        env=fresh_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def served_code(exported: Exported, log: Path) -> None:
    """The user's module was imported once, from the artifact's code/ folder, and the decoy never."""
    lines = log.read_text().splitlines() if log.exists() else []
    assert lines == [str((exported.artifact / "code" / f"{exported.project.module}.py").resolve())], lines


def test_the_export_writes_the_code_and_prints_the_files_and_each_runtimes_verdict(exported: Exported) -> None:
    stdout, module = exported.run.stdout, exported.project.module
    assert f"exported scorer version 3 to {exported.out}:" in stdout, stdout
    for name in (f"code/{module}.py", "golden.json", "manifest.json", "model.keras"):
        assert re.search(rf"^  {re.escape(name)}  \(\d+ bytes\)$", stdout, re.M), f"{name} not listed:\n{stdout}"
    assert "tensorflow: golden_passed" in stdout.splitlines(), stdout
    assert any(line.startswith("litert: ") for line in stdout.splitlines()), stdout
    assert exported.run.stderr.count("Traceback") == 0, exported.run.stderr[-2000:]

    manifest = exported.manifest
    assert manifest["code"] == {"bundled": [{"module": module, "files": [f"code/{module}.py"]}], "installed": []}
    source = (exported.project.folder / f"{module}.py").read_bytes()
    assert manifest["files"][f"code/{module}.py"] == hashlib.sha256(source).hexdigest()
    assert (exported.artifact / "code" / f"{module}.py").read_bytes() == source
    assert manifest["runtimes"]["tensorflow"] == {"golden_passed": True}


def test_the_exports_own_replay_ran_the_staged_copy_of_the_code(exported: Exported) -> None:
    module = exported.project.module
    staged = str((exported.out.parent / f".{exported.out.name}.staging" / "code" / f"{module}.py").resolve())
    log = exported.import_log
    # First the user's file (the command imports it to load the model), then the copy, for each replay.
    assert log[0] == str((exported.project.folder / f"{module}.py").resolve()), log
    assert staged in log[1:], log
    assert set(log) == {log[0], staged}, log


def test_the_golden_answers_are_what_the_model_itself_predicted(exported: Exported) -> None:
    golden = json.loads((exported.artifact / "golden.json").read_text())
    for case in golden["cases"]:
        np.testing.assert_allclose(
            np.asarray(case["expected"]["output_0"]), exported.project.expected[case["name"]], rtol=0, atol=0
        )
        assert case["request"] == exported.project.requests[case["name"]]


def test_verify_passes_in_a_fresh_process_elsewhere(exported: Exported, elsewhere: Path, tmp_path: Path) -> None:
    log = tmp_path / "imports.txt"
    env = {"MODEL_DIR": str(exported.artifact), "SERVING_RUNTIME": "tensorflow", IMPORT_LOG_VARIABLE: str(log)}
    run = handler_cli("verify", cwd=elsewhere, **env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "all 2 golden cases of 'scorer' match training on tensorflow" in run.stdout, run.stdout
    served_code(exported, log)
    assert not list(exported.artifact.rglob("__pycache__")), "serving wrote bytecode into the artifact"


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_the_local_server_answers_training_outputs(exported: Exported, elsewhere: Path, tmp_path: Path) -> None:
    log = tmp_path / "imports.txt"
    env = fresh_env(SERVING_RUNTIME="tensorflow", **{IMPORT_LOG_VARIABLE: str(log)})
    with serving(exported.artifact, cwd=elsewhere, base_env=env) as host:
        for case, body in exported.project.requests.items():
            answer = _post(f"http://{host}/v1/models/scorer:predict", body)
            assert_predictions(answer, exported.project.expected[case], f"python -m handler serve, {case}")
    served_code(exported, log)


@pytest.fixture
def emulator(
    exported: Exported, elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RuntimeEmulator]:
    for name in ("PYTHONPATH", "CUSTOM_OBJECT_MODULES", "MODEL_S3_URI", "MODEL_DIGEST"):
        monkeypatch.delenv(name, raising=False)  # the emulator starts from this process's environment
    env = {
        "MODEL_DIR": str(exported.artifact),
        "SERVING_RUNTIME": "tensorflow",
        IMPORT_LOG_VARIABLE: str(tmp_path / "imports.txt"),
    }
    with RuntimeEmulator(rie_binary(), tmp_path / "emulator.log", env, cwd=elsewhere) as running:
        yield running


def test_the_runtime_emulator_answers_training_outputs(
    exported: Exported, emulator: RuntimeEmulator, tmp_path: Path
) -> None:
    for case, body in exported.project.requests.items():
        direct = emulator.invoke(body)
        assert direct.status == 200, f"{direct}\n{emulator.log()}"
        assert_predictions(direct.json_object(), exported.project.expected[case], f"direct invoke, {case}")
        api = emulator.invoke(http_api_event(body, path="/v1/models/scorer:predict")).json_object()
        assert api.get("statusCode") == 200, api
        assert_predictions(json.loads(api["body"]), exported.project.expected[case], f"HTTP API event, {case}")
    served_code(exported, tmp_path / "imports.txt")


def test_the_artifact_is_served_from_a_local_s3_through_model_s3_uri(
    exported: Exported, elsewhere: Path, s3: Any, bucket: str, tmp_path: Path
) -> None:
    for path in sorted(p for p in exported.artifact.rglob("*") if p.is_file()):
        s3.put_object(
            Bucket=bucket, Key=f"models/scorer/{path.relative_to(exported.artifact).as_posix()}", Body=path.read_bytes()
        )
    log, cache = tmp_path / "imports.txt", tmp_path / "cache"
    env = {
        "MODEL_S3_URI": f"s3://{bucket}/models/scorer/",
        "MODEL_CACHE_DIR": str(cache),
        "SERVING_RUNTIME": "tensorflow",
        IMPORT_LOG_VARIABLE: str(log),
    }
    run = handler_cli("verify", cwd=elsewhere, **env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "all 2 golden cases of 'scorer' match training on tensorflow" in run.stdout, run.stdout
    (downloaded,) = cache.glob("skewless-model-*")
    module = exported.project.module
    assert log.read_text().splitlines() == [str((downloaded / "code" / f"{module}.py").resolve())]
    body = json.dumps(exported.project.requests["one_row"])
    run = handler_cli("predict", body, cwd=elsewhere, **env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert_predictions(json.loads(run.stdout), exported.project.expected["one_row"], "predict from MODEL_S3_URI")


def _copy(exported: Exported, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported.artifact, tmp_path / "scorer"))


def test_a_tampered_code_file_is_refused_with_one_line(exported: Exported, elsewhere: Path, tmp_path: Path) -> None:
    artifact = _copy(exported, tmp_path)
    code = artifact / "code" / f"{exported.project.module}.py"
    code.write_text(code.read_text().replace("(inputs + self.offset) * self.factor", "inputs * self.factor"))
    run = handler_cli("verify", cwd=elsewhere, MODEL_DIR=str(artifact), SERVING_RUNTIME="tensorflow")
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.fullmatch(
        rf"error: artifact code/{exported.project.module}\.py does not match manifest\.json \(sha256 [0-9a-f]{{12}}"
        r"\.\.\., expected [0-9a-f]{12}\.\.\.\): it was changed after export; re-export the model or restore the file",
        run.stderr.strip(),
    ), run.stderr


@pytest.mark.parametrize("extra", ["code/helpers.py", "code/__pycache__/user_layers.cpython-311.pyc"])
def test_a_code_file_the_manifest_does_not_list_is_refused(
    extra: str, exported: Exported, elsewhere: Path, tmp_path: Path
) -> None:
    artifact = _copy(exported, tmp_path)
    (artifact / extra).parent.mkdir(parents=True, exist_ok=True)
    (artifact / extra).write_bytes(b"import os\n")
    run = handler_cli("verify", cwd=elsewhere, MODEL_DIR=str(artifact), SERVING_RUNTIME="tensorflow")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.strip() == (
        f"error: {extra} is in {artifact} but not listed in manifest.json: the server imports only code the export "
        f"hashed; remove it or re-export the model"
    ), run.stderr

"""Custom layers live in the user's own module: export checks where they are and carries it, serving imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import pytest

from handler.bootstrap import open_service
from handler.errors import ExportError, ModelLoadError
from handler.export import export_model
from handler.export.code import isolated
from handler.settings import Settings
from tests.golden import layers
from tests.golden.conftest import ROOT, copy_model, run_handler
from tests.support.artifacts import write_manifest

pytestmark = pytest.mark.slow

ROWS = [[1.0, 2.0, 3.0], [0.5, 0.5, -2.0]]
# Dense(ones) sums each row, the layer multiplies by 3: 6 -> 18, -1 -> -3.
SCALED_BY_3 = [[18.0], [-3.0]]


def _scaled(layer: keras.layers.Layer) -> Any:
    inputs = keras.Input(shape=(3,), name="x")
    return keras.Model(inputs, layer(keras.layers.Dense(1, kernel_initializer="ones")(inputs)))


def _export(tmp_path: Path, layer: keras.layers.Layer, modules: tuple[str, ...] | None) -> Path:
    out = tmp_path / "out"
    samples = {"two": {"instances": ROWS}}
    export_model(
        _scaled(layer), None, samples, out, name="m", version="1", custom_object_modules=modules, litert_runtime=False
    )
    return out


def test_an_unregistered_custom_layer_is_refused_at_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        _export(tmp_path, layers.UnregisteredScale(factor=2.0), (layers.MODULE,))
    assert info.value.message.startswith("custom layer UnregisteredScale is not registered")
    assert "register_keras_serializable" in info.value.message


def test_a_custom_layer_outside_the_served_modules_is_refused_at_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        _export(tmp_path, layers.CarefulScale(factor=3.0), ("handler.custom_objects",))
    assert info.value.message == (
        "custom layer CarefulScale is defined in tests.golden.layers, which is not among the modules the "
        "export was given (handler.custom_objects): add it to custom_object_modules, so the artifact carries it"
    )


SCRIPT = """
import sys
from typing import Any
import keras
from handler.export import ExportError, export_model

@keras.saving.register_keras_serializable(package="skewless-script")
class Doubler(keras.layers.Layer):
    def call(self, inputs: Any) -> Any:
        return inputs * 2.0

inputs = keras.Input(shape=(2,), name="x")
model = keras.Model(inputs, Doubler()(inputs))
try:
    export_model(model, None, {"one": {"instances": [[1.0, 2.0]]}}, sys.argv[1], name="m", version="1")
except ExportError as exc:
    print("ExportError:", exc.message)
"""


def test_a_custom_layer_defined_in_the_training_script_itself_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(
        "ExportError: custom layer Doubler is defined in the training script itself (__main__)"
    ), run.stdout
    assert "move it to a module of its own, which the artifact then carries in code/" in run.stdout
    assert not (tmp_path / "out").exists()


PROBE = """
import json, sys
from handler.bootstrap import open_service
from handler.errors import ModelLoadError
from handler.settings import Settings
try:
    service = open_service(Settings.from_env())
    print(json.dumps({"predictions": service.predict_v1({"instances": %r})["predictions"]}))
except ModelLoadError as exc:
    print(json.dumps({"error": type(exc).__name__, "status": exc.status, "message": exc.message}))
"""

# An artifact that does not carry the module (as exported before code/ existed): its record left out.
WITHOUT_CODE = """
import dataclasses, json, pathlib, sys
from handler.core.artifacts import Artifacts
from handler.core.model import load_tensorflow_forward
from handler.errors import ModelLoadError
artifacts = Artifacts.open(pathlib.Path(sys.argv[1]))
raw = {k: v for k, v in artifacts.manifest.raw.items() if k != "code"}
try:
    load_tensorflow_forward(dataclasses.replace(artifacts, manifest=dataclasses.replace(artifacts.manifest, raw=raw)))
except ModelLoadError as exc:
    print(json.dumps({"error": type(exc).__name__, "status": exc.status, "message": exc.message}))
"""


def _fresh(script: str, *args: str, **env: str) -> dict[str, Any]:
    """`script` in a fresh process outside the repository, where `tests` is not importable."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CUSTOM_OBJECT_MODULES")}
    run = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT.parent, env={**clean, **env}, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip(), run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_a_layer_of_the_users_module_is_served_from_the_artifacts_code(tmp_path: Path) -> None:
    out = _export(tmp_path, layers.CarefulScale(factor=3.0), (layers.MODULE,))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["custom_objects"] == ["skewless-tests>CarefulScale"]
    assert manifest["code"]["bundled"] == [{"module": layers.MODULE, "files": ["code/tests/golden/layers.py"]}]

    with isolated(out):  # the server imports the artifact's copy; this process gets its own module back after
        served = open_service(Settings(model_dir=out), runtime="tensorflow")
        assert served.predict_v1({"instances": ROWS}) == {"predictions": SCALED_BY_3}
        assert sys.modules[layers.MODULE] is not layers
    assert sys.modules[layers.MODULE] is layers

    # A fresh process where nothing can import tests.golden.layers and no setting names it: code/ serves it.
    result = _fresh(PROBE % (ROWS,), MODEL_DIR=str(out), SERVING_RUNTIME="tensorflow")
    assert result == {"predictions": SCALED_BY_3}, result

    result = _fresh(WITHOUT_CODE, str(out))
    assert result["error"] == "ModelLoadError" and result["status"] == 503, result
    message = result["message"]
    assert "skewless-tests>CarefulScale" in message and "set CUSTOM_OBJECT_MODULES" in message
    assert "(the export found them in tests.golden.layers)" in message

    run = run_handler("verify", env={"MODEL_DIR": str(out), "CUSTOM_OBJECT_MODULES": layers.MODULE})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all 1 golden cases of 'm' match training on tensorflow" in run.stdout


def test_a_manifest_naming_a_custom_object_nobody_registers_is_refused_at_load(tmp_path: Path) -> None:
    model_dir = copy_model("churn", tmp_path / "churn")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["custom_objects"].append("skewless>Vanished")
    write_manifest(model_dir, manifest)
    service = open_service(Settings(model_dir=model_dir), runtime="tensorflow")
    with pytest.raises(ModelLoadError) as info:
        service.model.load()
    # Only the missing one is named: churn's own Temperature is registered by handler.custom_objects.
    assert info.value.message.startswith("the model uses custom object(s) skewless>Vanished that are not registered")
    assert "set CUSTOM_OBJECT_MODULES" in info.value.message

"""`skewless export` on what is not a Keras model file, and on the legacy `.h5` format.

Each mistake is one line, `error: ...` on stderr, saying what to do, and exit status 1: never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from handler.__main__ import main
from tests.export.conftest import export_command
from tests.support.user_project import UserProject, fresh_env, write_project


def _export(capsys: pytest.CaptureFixture[str], model: Path | str, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(
        [
            "export",
            str(model),
            "--requests",
            "requests.json",
            "--out",
            str(out),
            "--name",
            "m",
            "--version",
            "1",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's folder, the working directory of the command; with a requests file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requests.json").write_text(json.dumps({"one": {"instances": [[1.0, 2.0]]}}))
    return tmp_path


def test_a_saved_model_directory_is_refused_with_what_to_do(project: UserProject, tmp_path: Path) -> None:
    inputs = keras.Input(shape=(2,), name="x")
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).export(str(tmp_path / "saved"), verbose=False)
    assert (tmp_path / "saved" / "saved_model.pb").is_file()
    command = export_command(project, tmp_path / "out")
    command[command.index(project.model_file.name)] = str(tmp_path / "saved")
    run = subprocess.run(command, cwd=project.folder, env=fresh_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.strip() == (
        f"error: {tmp_path / 'saved'} is a TensorFlow SavedModel, which holds the traced graph but not the Keras "
        f"model: export from the Keras model that produced it, saved as a .keras file (model.save('model.keras'))"
    )
    assert not (tmp_path / "out").exists()


def test_a_folder_holding_only_model_keras_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "trained").mkdir()
    (folder / "trained" / "model.keras").write_bytes(b"PK")
    code, _, err = _export(capsys, "trained", folder / "out")
    assert (code, err) == (
        1,
        "error: trained is a folder holding model.keras, not an artifact: export the file itself "
        "(skewless export trained/model.keras ...)",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.keras", "error: missing.keras not found: give the .keras file your training saved"),
        ("model.weights.h5", "error: model.weights.h5 is not a saved Keras model: give a .keras file"),
        ("model.tflite", "error: model.tflite is not a saved Keras model: give a .keras file"),
    ],
)
def test_what_is_not_a_keras_model_file_is_refused(
    name: str, message: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if name != "missing.keras":
        (folder / name).write_bytes(b"\0")
    code, _, err = _export(capsys, name, folder / "out")
    assert code == 1 and err.startswith(message), err


def test_bad_request_and_expected_files_are_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "m.keras").write_bytes(b"\0")
    (folder / "requests.json").write_text('{"one": ')
    code, _, err = _export(capsys, "m.keras", folder / "out")
    assert code == 1 and err.startswith("error: the requests file requests.json is not valid JSON: "), err
    (folder / "requests.json").write_text("[]")
    code, _, err = _export(capsys, "m.keras", folder / "out")
    assert code == 1 and err.startswith("error: the requests file requests.json must be a JSON object"), err
    (folder / "requests.json").write_text('{"one": {"instances": [[1.0]]}}')
    (folder / "expected.json").write_text('{"one": [["a"]]}')
    code, _, err = _export(capsys, "m.keras", folder / "out", "--expected", "expected.json")
    assert code == 1 and err.startswith("error: the expected outputs of 'one' in expected.json are not arrays"), err


def test_a_custom_layer_module_not_named_says_so(
    project: UserProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(project.folder)
    code = main(
        [
            "export",
            str(project.model_file),
            "--requests",
            "requests.json",
            "--out",
            str(tmp_path / "out"),
            "--name",
            "m",
            "--version",
            "1",
            "--custom-object-module",
            "not_a_module_here",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(
        f"error: --custom-object-module not_a_module_here cannot be imported from {project.folder} "
    ), err


def test_an_unwrapped_subclassed_model_is_refused_with_how_to_wrap_it(
    project: UserProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(project.folder)
    net = sys.modules[project.module].Scorer(units=2)
    net(np.zeros((1, 4), dtype="float32"))
    net.save(tmp_path / "net.keras")
    code = main(
        [
            "export",
            str(tmp_path / "net.keras"),
            "--requests",
            "requests.json",
            "--out",
            str(tmp_path / "o"),
            "--name",
            "m",
            "--version",
            "1",
            "--custom-object-module",
            project.module,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: the model has no defined inputs: "), err
    assert "wrap a subclassed model in one: inputs = keras.Input(shape=..., name=...)" in err


def test_an_h5_model_loads_without_its_training_configuration(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile=False: the .h5 names a loss of the training script's, which the export does not need."""
    project = write_project(tmp_path_factory.mktemp("h5project"), module="h5_layers", suffix=".h5", compiled=True)
    monkeypatch.chdir(project.folder)
    out = tmp_path_factory.mktemp("h5out") / "scorer"
    code = main(
        [
            "export",
            project.model_file.name,
            "--requests",
            "requests.json",
            "--out",
            str(out),
            "--name",
            "scorer",
            "--version",
            "1",
            "--custom-object-module",
            "h5_layers",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert "tensorflow: golden_passed" in captured.out.splitlines(), captured.out
    golden = json.loads((out / "golden.json").read_text())
    for case in golden["cases"]:  # the export's own model.predict on the loaded model: training's answers
        np.testing.assert_allclose(case["expected"]["output_0"], project.expected[case["name"]], rtol=1e-6, atol=1e-6)
    assert (out / "code" / "h5_layers.py").is_file()

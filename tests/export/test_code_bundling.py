"""What the artifact carries in code/, what it records instead, and what it refuses, in this process.

The user's modules live in temporary folders outside the repository; each test puts its folder on sys.path
only for itself (monkeypatch), as a training script's folder is on its path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import keras
import pytest

from handler.bootstrap import open_service
from handler.core.artifact_code import CodeRecord, import_artifact_code
from handler.errors import ExportError
from handler.export import export_model
from handler.export.code import bundle, isolated
from handler.settings import Settings
from tests.export.conftest import Exported
from tests.support.user_project import MODULE_SOURCE, assert_predictions, load_module

COMPILED = "cpython-311-x86_64-linux-gnu.so"


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of the user's on sys.path; whatever this test imports from it is forgotten afterwards."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if str(folder) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_a_compiled_extension_module_is_refused_with_what_to_do(on_path: Path, tmp_path: Path) -> None:
    (on_path / f"fastlayers.{COMPILED}").write_bytes(b"\x7fELF not really")
    with pytest.raises(ExportError) as info:
        bundle(("fastlayers",), tmp_path / "staging")
    message = info.value.message
    assert message.startswith("the custom object module fastlayers is not pure Python source: ")
    assert f"fastlayers.{COMPILED} is a compiled extension, which an artifact cannot carry" in message
    assert "Install it as a package (pip install)" in message and "records it by name and version" in message


def test_a_package_holding_a_compiled_extension_is_refused_by_the_export(
    on_path: Path, tmp_path: Path, project_module: str
) -> None:
    _write(on_path, {"extpkg/__init__.py": f"from {project_module} import Shift\n"})
    (on_path / "extpkg" / f"_speedups.{COMPILED}").write_bytes(b"\x7fELF not really")
    import extpkg  # type: ignore[import-not-found]

    inputs = keras.Input(shape=(2,), name="x")
    model = keras.Model(inputs, extpkg.Shift(1.0, 2.0)(inputs))
    with pytest.raises(ExportError) as info:
        export_model(
            model,
            None,
            {"one": {"instances": [[1.0, 2.0]]}},
            tmp_path / "out",
            name="m",
            version="1",
            custom_object_modules=(project_module, "extpkg"),
            litert_runtime=False,
        )
    assert info.value.message.startswith("the custom object module extpkg is not pure Python source: ")
    assert f"_speedups.{COMPILED} is a compiled extension" in info.value.message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.fixture
def project_module(on_path: Path) -> str:
    """The user's layer module, written into the folder on the path and imported."""
    (on_path / "bundled_layers.py").write_text(MODULE_SOURCE)
    load_module(on_path, "bundled_layers")
    return "bundled_layers"


def test_modules_of_the_installed_environment_are_recorded_by_name_and_version_not_copied(
    project_module: str, tmp_path: Path
) -> None:
    user = sys.modules[project_module]
    inputs = keras.Input(shape=(4,), name="features")
    model = keras.Model(inputs, user.Scorer(units=4)(inputs))
    modules = (project_module, "packaging", "handler.custom_objects", "json")
    manifest = export_model(
        model,
        None,
        {"one": {"instances": [[0.1, 0.2, 0.3, 0.4]]}},
        tmp_path / "out",
        name="m",
        version="1",
        custom_object_modules=modules,
        litert_runtime=False,
    )
    assert manifest["code"] == {
        "bundled": [{"module": project_module, "files": [f"code/{project_module}.py"]}],
        "installed": [
            {"module": "packaging", "distribution": "packaging", "version": metadata.version("packaging")},
            {"module": "handler.custom_objects", "distribution": "skewless", "version": metadata.version("skewless")},
            {"module": "json", "distribution": "python", "version": sys.version.split()[0]},
        ],
    }
    copied = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out" / "code").rglob("*"))
    assert copied == [f"code/{project_module}.py"]
    assert [f for f in manifest["files"] if f.startswith("code/")] == [f"code/{project_module}.py"]
    # The export's replay ran the staged copy; the training process has its own module and classes back.
    assert sys.modules[project_module] is user
    assert keras.saving.get_registered_object("skewless-user>Scorer") is user.Scorer


def test_an_artifact_module_replaces_one_of_the_same_name_already_imported(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = exported.project.module
    decoy = tmp_path / "decoy"
    _write(decoy, {f"{module}.py": "IMPORTED_FROM = 'elsewhere'\n"})
    monkeypatch.syspath_prepend(str(decoy))
    monkeypatch.delitem(sys.modules, module, raising=False)
    __import__(module)
    with isolated(exported.artifact):  # this process gets its modules and registrations back afterwards
        service = open_service(Settings(model_dir=exported.artifact), runtime="tensorflow")
        for case, body in exported.project.requests.items():
            assert_predictions(service.predict_v1(body), exported.project.expected[case], case)
        served = sys.modules[module]
        assert not hasattr(served, "IMPORTED_FROM")
        assert Path(served.__file__ or "").parent == (exported.artifact / "code").resolve()
    assert sys.modules[module].IMPORTED_FROM == "elsewhere"


def test_a_bundled_module_importing_a_users_module_left_behind_is_refused(on_path: Path, tmp_path: Path) -> None:
    _write(on_path, {"helpers.py": "OFFSET = 1.0\n", "uses_helpers.py": "import json\nfrom helpers import OFFSET\n"})
    with pytest.raises(ExportError) as info:
        bundle(("uses_helpers",), tmp_path / "staging")
    assert info.value.message.startswith(
        "code/uses_helpers.py imports helpers, which the artifact does not carry and the environment does not "
        "install: the image could not import it. Name it too (custom_object_modules, or --custom-object-module "
        "helpers)"
    )


def test_bundled_modules_import_each_other_from_code_in_any_order(on_path: Path, tmp_path: Path) -> None:
    _write(on_path, {"helpers.py": "OFFSET = 1.0\n", "uses_helpers.py": "from helpers import OFFSET\n"})
    staging = tmp_path / "artifact"
    record = bundle(("uses_helpers", "helpers"), staging)
    _write(on_path, {"helpers.py": "OFFSET = 'the copy on the path'\n"})
    listed = {f: "" for m in record.bundled for f in m.files}
    with isolated(staging):
        import_artifact_code(staging, CodeRecord.from_manifest({"code": record.to_dict()}, listed))
        assert sys.modules["uses_helpers"].OFFSET == 1.0
        assert Path(sys.modules["helpers"].__file__ or "").parent == (staging / "code").resolve()
    assert "uses_helpers" not in sys.modules


def test_a_package_is_carried_whole_and_a_submodule_alone(on_path: Path, tmp_path: Path) -> None:
    _write(
        on_path,
        {
            "mypkg/__init__.py": "from mypkg.sub.util import VALUE\n",
            "mypkg/layers.py": "from . import sub\nfrom .sub import util\nSCALE = util.VALUE * 2\n",
            "mypkg/sub/__init__.py": "",
            "mypkg/sub/util.py": "VALUE = 21\n",
            "mypkg/run-me.py": "print('a script, not a module')\n",
        },
    )
    whole = bundle(("mypkg",), tmp_path / "whole")
    assert whole.bundled[0].files == (
        "code/mypkg/__init__.py",
        "code/mypkg/layers.py",
        "code/mypkg/sub/__init__.py",
        "code/mypkg/sub/util.py",
    )
    with pytest.raises(ExportError, match=r"code/mypkg/layers.py imports mypkg.sub, which the artifact does not"):
        bundle(("mypkg.layers",), tmp_path / "alone")
    alone = bundle(("mypkg.layers", "mypkg.sub"), tmp_path / "alone")
    assert [m.files for m in alone.bundled] == [
        ("code/mypkg/layers.py",),
        ("code/mypkg/sub/__init__.py", "code/mypkg/sub/util.py"),
    ]
    listed = {f: "" for m in alone.bundled for f in m.files}
    with isolated(tmp_path / "alone"):
        for name in [n for n in sys.modules if n == "mypkg" or n.startswith("mypkg.")]:
            del sys.modules[name]
        import_artifact_code(tmp_path / "alone", CodeRecord.from_manifest({"code": alone.to_dict()}, listed))
        assert sys.modules["mypkg.layers"].SCALE == 42
        # The package of a submodule carried alone is a namespace over code/: its own __init__ is not run.
        assert not hasattr(sys.modules["mypkg"], "VALUE")


def test_a_namespace_package_is_refused_with_the_fix(on_path: Path, tmp_path: Path) -> None:
    _write(on_path, {"nspkg/layers.py": "X = 1\n"})
    with pytest.raises(ExportError, match=r"nspkg is a namespace package \(a folder without __init__.py\): add an"):
        bundle(("nspkg",), tmp_path / "staging")


def test_the_manifest_records_the_code_it_carries(exported: Exported) -> None:
    manifest = json.loads((exported.artifact / "manifest.json").read_text())
    record = CodeRecord.from_manifest(manifest, manifest["files"])
    assert record.names == (exported.project.module,)

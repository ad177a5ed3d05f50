"""The code/ folder of an artifact: only importable .py paths inside it are artifact names, every file there is
listed, the manifest's record of it is checked, and the download from MODEL_S3_URI keeps its folders."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from handler import model_store
from handler.core.artifact_code import CodeRecord, InstalledModule, import_artifact_code
from handler.core.artifacts import Artifacts, is_code_file
from handler.errors import ArtifactError, ModelLoadError
from tests.support import zoo


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("code/layers.py", True),
        ("code/my_pkg/sub/util.py", True),
        ("code/__init__.py", True),
        ("code/../escape.py", False),
        ("code/a/../../escape.py", False),
        ("code//layers.py", False),
        ("code/layers.so", False),
        ("code/my-script.py", False),
        ("code/__pycache__/layers.cpython-311.pyc", False),
        ("code", False),
        ("/code/layers.py", False),
        ("code\\layers.py", False),
        ("other/layers.py", False),
    ],
)
def test_only_importable_python_paths_inside_code_are_artifact_names(name: str, ok: bool) -> None:
    assert is_code_file(name) is ok


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "churn"
    shutil.copytree(zoo.model_dir("churn"), dst)
    return dst


def _refusal(model_dir: Path) -> str:
    with pytest.raises(ArtifactError) as info:
        Artifacts.open(model_dir)
    return info.value.message


def test_any_file_under_code_that_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    (model_dir / "code" / "pkg").mkdir(parents=True)
    assert Artifacts.open(model_dir).manifest.name == "churn"  # empty folders hold no code
    (model_dir / "code" / "pkg" / "notes.txt").write_text("not even Python")
    assert _refusal(model_dir) == (
        f"code/pkg/notes.txt is in {model_dir} but not listed in manifest.json: the server imports only code the "
        f"export hashed; remove it or re-export the model"
    )


def test_a_code_file_or_link_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    (model_dir / "code").write_text("x = 1\n")
    assert _refusal(model_dir).startswith(f"code is in {model_dir} but not listed in manifest.json")
    (model_dir / "code").unlink()
    (tmp_path / "elsewhere").mkdir()
    (model_dir / "code").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert _refusal(model_dir).startswith(f"code is in {model_dir} but not listed in manifest.json")


def test_a_manifest_listing_a_path_out_of_code_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    manifest = Artifacts.open(model_dir).manifest
    (tmp_path / "escape.py").write_text("x = 1\n")
    bad = replace(manifest, files={**manifest.files, "code/../../escape.py": "0" * 64})
    with pytest.raises(ArtifactError, match=r"lists 'code/../../escape.py', which is not an artifact of this format"):
        bad.verify_files(model_dir)


def _record(code: Any, listed: dict[str, str]) -> str:
    with pytest.raises(ArtifactError) as info:
        CodeRecord.from_manifest({"code": code}, listed)
    return info.value.message


def test_a_malformed_code_record_is_one_clear_error() -> None:
    listed = {"code/layers.py": "0" * 64}
    assert CodeRecord.from_manifest({}, listed) == CodeRecord()
    ok = {"bundled": [{"module": "layers", "files": ["code/layers.py"]}], "installed": []}
    assert CodeRecord.from_manifest({"code": ok}, listed).names == ("layers",)
    unlisted = {"bundled": [{"module": "layers", "files": ["code/other.py"]}], "installed": []}
    assert _record(unlisted, listed) == (
        "manifest.json's 'code' record is not valid: bundled module layers's file 'code/other.py' is not a code/ "
        "file listed in 'files'"
    )
    assert _record({"bundled": []}, listed) == "manifest.json's 'code' record is not valid: 'installed' is missing"
    assert _record("layers", listed).startswith("manifest.json's 'code' record is not valid: ")
    bad_name = {"bundled": [], "installed": [{"module": "not a module", "distribution": None, "version": None}]}
    assert _record(bad_name, listed).startswith("manifest.json's 'code' record is not valid: an installed module")


def _publish(s3: Any, bucket: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"m/{name}", Body=data)
    return f"s3://{bucket}/m/"


def test_the_download_keeps_code_folders_and_refuses_a_path_out_of_them(s3: Any, bucket: str, tmp_path: Path) -> None:
    source = b"VALUE = 1\n"
    digest = hashlib.sha256(source).hexdigest()
    manifest = {"files": {"code/pkg/__init__.py": digest}}
    uri = _publish(s3, bucket, {"manifest.json": json.dumps(manifest).encode(), "code/pkg/__init__.py": source})
    local = model_store.fetch_model(uri, tmp_path / "cache", s3)
    assert (local / "code" / "pkg" / "__init__.py").read_bytes() == source

    manifest = {"files": {"code/../../escape.py": digest}}
    uri = _publish(s3, bucket, {"manifest.json": json.dumps(manifest).encode(), "escape.py": source})
    with pytest.raises(ArtifactError, match="artifact names must be plain file names, or code/ files"):
        model_store.fetch_model(uri, tmp_path / "cache2", s3)
    assert not (tmp_path / "cache2").exists() or not any((tmp_path / "cache2").rglob("*.py"))


def test_installed_modules_are_imported_by_name_and_a_missing_one_says_what_to_install(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    here = metadata.version("packaging")
    same = CodeRecord(installed=(InstalledModule("packaging.version", "packaging", here),))
    with caplog.at_level("WARNING", logger="skewless.code"):
        import_artifact_code(tmp_path, same)
        # Importable without its distribution's metadata (the image copies handler/ alone): nothing to say.
        import_artifact_code(tmp_path, CodeRecord(installed=(InstalledModule("json", "not-a-distribution", "1"),)))
    assert caplog.records == []
    with caplog.at_level("WARNING", logger="skewless.code"):
        import_artifact_code(tmp_path, CodeRecord(installed=(InstalledModule("packaging", "packaging", "0.1"),)))
    assert [r.getMessage() for r in caplog.records] == [f"packaging is {here} here, the model was exported with 0.1"]
    gone = CodeRecord(installed=(InstalledModule("skewless_gone_pkg.layers", "skewless-gone", "2.0"),))
    with pytest.raises(ModelLoadError) as info:
        import_artifact_code(tmp_path, gone)
    assert info.value.message.startswith(
        "the model's custom objects need skewless_gone_pkg.layers (recorded at export as installed, from "
        "skewless-gone==2.0), which cannot be imported here ("
    )
    assert info.value.message.endswith("): install skewless-gone==2.0 in the image")

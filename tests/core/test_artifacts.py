"""The artifact contract: every file the server may read is listed and hashed in the manifest, or refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from handler.core.artifacts import Artifacts
from handler.errors import ArtifactError
from tests.support import zoo
from tests.support.artifacts import edit_manifest


def _copy(tmp_path: Path, name: str = "churn") -> Path:
    dst = tmp_path / name
    shutil.copytree(zoo.model_dir(name), dst)
    return dst


def _refusal(model_dir: Path) -> str:
    with pytest.raises(ArtifactError) as info:
        Artifacts.open(model_dir)
    assert info.value.status == 503 and info.value.code == "artifacts_invalid"
    return info.value.message


@pytest.mark.parametrize("name", zoo.MODELS)
def test_every_committed_model_opens_with_its_signature(name: str) -> None:
    artifacts = Artifacts.open(zoo.model_dir(name))
    assert artifacts.manifest.name == name
    assert artifacts.signature.feature_names == zoo.feature_names(name)
    assert artifacts.signature.output_names == zoo.output_names(name)
    assert (artifacts.preprocessor is not None) == (name == "churn")


def test_a_model_tflite_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].pop("model.tflite"))
    message = _refusal(model_dir)
    assert message.startswith("model.tflite is in ") and "not listed in manifest.json" in message


def test_a_preprocessing_json_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].pop("preprocessing.json"))
    message = _refusal(model_dir)
    assert message.startswith("preprocessing.json is in ") and "not listed in manifest.json" in message


def test_a_baseline_json_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path, "digits")
    edit_manifest(model_dir, lambda m: m["files"].pop("baseline.json", None))
    (model_dir / "baseline.json").write_text("{}")
    assert _refusal(model_dir).startswith("baseline.json is in ")


def test_an_unlisted_tflite_is_fine_once_removed_and_then_litert_is_not_offered(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].pop("model.tflite"))
    (model_dir / "model.tflite").unlink()
    assert not Artifacts.open(model_dir).has_litert


def test_files_that_are_no_artifact_are_ignored(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    (model_dir / "README.txt").write_text("notes")
    assert Artifacts.open(model_dir).has_litert


def test_a_changed_tflite_is_refused_by_name(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    with (model_dir / "model.tflite").open("ab") as fh:
        fh.write(b"\0")
    assert _refusal(model_dir).startswith("artifact model.tflite does not match manifest.json")


def test_a_manifest_listing_a_file_of_no_artifact_kind_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].update({"extra.py": "0" * 64}))
    assert _refusal(model_dir) == "manifest.json lists 'extra.py', which is not an artifact of this format"


def test_a_manifest_of_another_format_says_to_re_export(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m.update(format_version=1))
    message = _refusal(model_dir)
    assert "has manifest format 1, this server reads format 3" in message and "re-export" in message


def test_a_manifest_without_model_keras_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].pop("model.keras"))
    assert _refusal(model_dir).startswith("manifest.json does not list model.keras")


def test_features_apart_from_inputs_without_preprocessing_json_are_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, lambda m: m["files"].pop("preprocessing.json"))
    (model_dir / "preprocessing.json").unlink()
    assert "lists no preprocessing.json" in _refusal(model_dir)


def test_preprocessing_json_from_another_export_is_refused(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)

    def rename_feature(m: dict[str, Any]) -> None:
        m["signature"]["features"][0]["name"] = "tenure"

    edit_manifest(model_dir, rename_feature)
    assert "the two files come from different exports" in _refusal(model_dir)

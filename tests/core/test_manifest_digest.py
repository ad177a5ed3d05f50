"""The manifest protects itself: its digest covers its content, a deployment may pin it, and a malformed one
is refused with one line. Every expectation here is written by hand; the artifacts are copies of churn's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from handler.bootstrap import open_service
from handler.core.artifacts import Artifacts
from handler.errors import ArtifactError
from handler.settings import Settings, SettingsError
from tests.support import zoo
from tests.support.artifacts import edit_manifest


def _copy(tmp_path: Path, model: str = "churn") -> Path:
    return Path(shutil.copytree(zoo.model_dir(model), tmp_path / model))


def _refusal(model_dir: Path, pin: str | None = None) -> str:
    with pytest.raises(ArtifactError) as info:
        Artifacts.open(model_dir, pin=pin)
    return info.value.message


def _digest(model_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "handler", "digest", str(model_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_golden_file_edited_with_its_hash_redone_is_refused_by_the_digest(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    golden = json.loads((model_dir / "golden.json").read_text())
    golden["cases"][0]["expected"]["output_0"] = [[0.5]]  # what a hand edit would make the "truth"
    (model_dir / "golden.json").write_text(json.dumps(golden))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"]["golden.json"] = hashlib.sha256((model_dir / "golden.json").read_bytes()).hexdigest()
    (model_dir / "manifest.json").write_text(json.dumps(manifest))  # the hash redone, the digest not
    message = _refusal(model_dir)
    assert message.endswith(
        "manifest.json was edited after export: its content does not match its digest (sha256:"
        + manifest["digest"][7:19]
        + "...); re-export the model instead of editing the manifest"
    ), message


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["signature"]["features"][0].update(dtype="int32"),  # an edited signature
        lambda m: m["model"].update(version="2"),
        lambda m: m["runtimes"]["litert"].update(golden_passed=False),
    ],
    ids=["signature", "version", "runtimes"],
)
def test_any_hand_edit_of_the_manifest_is_refused(tmp_path: Path, edit: Any) -> None:
    model_dir = _copy(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    edit(manifest)
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert "was edited after export" in _refusal(model_dir)


def test_verify_on_an_edited_manifest_is_one_line_and_exit_1(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["signature"]["features"][0]["dtype"] = "int32"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run(
        [sys.executable, "-m", "handler", "verify"],
        env={**os.environ, "MODEL_DIR": str(model_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "was edited after export" in lines[0], lines
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda m: m.pop("signature"), "the key 'signature' is missing"),
        (lambda m: m["model"].pop("name"), "the key 'name' is missing"),
        (lambda m: m.update(files=["model.keras"]), "'files' must be an object"),
        (lambda m: m["signature"].update(features="churn"), "signature.features must be a list of tensors"),
        (lambda m: m["signature"]["features"][0].update(dtype="complex64"), "dtype 'complex64'"),
    ],
    ids=["no_signature", "no_name", "files_a_list", "features_a_string", "unknown_dtype"],
)
def test_a_malformed_manifest_is_refused_with_one_line_naming_what_is_wrong(
    tmp_path: Path, edit: Any, reason: str
) -> None:
    model_dir = _copy(tmp_path)
    edit_manifest(model_dir, edit)  # the digest redone: well formed as a digest, malformed as a manifest
    message = _refusal(model_dir)
    assert "is not a valid skewless manifest" in message and reason in message and "\n" not in message, message


def test_the_digest_command_prints_what_model_digest_pins(tmp_path: Path) -> None:
    churn, digits = _copy(tmp_path), _copy(tmp_path, "digits")
    pin = _digest(churn)
    assert pin == json.loads((churn / "manifest.json").read_text())["digest"] and pin.startswith("sha256:")
    assert open_service(Settings(model_dir=churn, model_digest=pin)).name == "churn"
    # Another valid artifact is refused by a function pinned to churn's digest.
    with pytest.raises(ArtifactError) as info:
        open_service(Settings(model_dir=digits, model_digest=pin))
    assert info.value.message == (
        f"MODEL_DIGEST pins {pin[:19]}..., but the artifact in {digits} is {_digest(digits)[:19]}...: "
        f"this function serves only the model it was deployed with"
    )


def test_a_model_digest_that_is_no_digest_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="MODEL_DIGEST='abc' must be 'sha256:' and 64 hex digits"):
        Settings.from_env({"MODEL_DIGEST": "abc"})

"""Installed versions read from the dist-info folders give what importlib.metadata gives, first on sys.path first."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from handler.core.artifacts import TRACKED_LIBRARIES
from handler.core.versions import installed_versions


def _metadata_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_the_tracked_libraries_read_as_importlib_metadata_reads_them() -> None:
    names = (*TRACKED_LIBRARIES, "aws-lambda-powertools", "Keras", "ai_edge_litert", "no-such-distribution")
    assert installed_versions(names) == {name: _metadata_version(name) for name in names}


def test_the_first_folder_on_sys_path_wins_and_egg_info_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "my_pkg-2.0.dist-info").mkdir(parents=True)
    (first / "my_pkg-2.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: My.Pkg\nVersion: 2.0\n\n")
    (second / "my_pkg-1.0.dist-info").mkdir(parents=True)
    (second / "my_pkg-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pkg\nVersion: 1.0\n")
    (second / "old_tool-0.3.egg-info").mkdir()
    (second / "old_tool-0.3.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: old-tool\nVersion: 0.3\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    found = installed_versions(("my-pkg", "old_tool"))
    assert found == {"my-pkg": "2.0", "old_tool": "0.3"}
    assert found == {name: _metadata_version(name) for name in found}

"""A user's project outside this repository, exported once per session by the command line, and its artifact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.user_project import IMPORT_LOG_VARIABLE, UserProject, fresh_env, write_project


@dataclass(frozen=True)
class Exported:
    project: UserProject
    run: subprocess.CompletedProcess[str]  # the export command, as the user ran it
    out: Path  # where the command wrote the artifact
    artifact: Path  # a copy of it in another folder: what the tests serve
    import_log: list[str]  # every file the user's module was imported from, during the export

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.artifact / "manifest.json").read_text())
        return data


def export_command(project: UserProject, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "handler",
        "export",
        project.model_file.name,
        "--requests",
        project.requests_file.name,
        "--out",
        str(out),
        "--name",
        "scorer",
        "--version",
        "3",
        *extra,
    ]


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> UserProject:
    return write_project(tmp_path_factory.mktemp("userpkg"))


@pytest.fixture(scope="session")
def exported(project: UserProject, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """`python -m handler export` run from the user's folder, then the artifact copied elsewhere."""
    out = tmp_path_factory.mktemp("exports") / "scorer"
    log = tmp_path_factory.mktemp("import-log") / "imports.txt"
    command = export_command(
        project, out, "--expected", project.expected_file.name, "--custom-object-module", project.module
    )
    run = subprocess.run(
        command,
        cwd=project.folder,
        env=fresh_env(**{IMPORT_LOG_VARIABLE: str(log)}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"the export failed ({run.returncode}):\n{run.stdout}\n{run.stderr[-3000:]}"
    artifact = tmp_path_factory.mktemp("shipped") / "scorer"
    shutil.copytree(out, artifact)
    return Exported(project, run, out, artifact, log.read_text().splitlines() if log.exists() else [])

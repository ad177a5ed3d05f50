"""Retraining churn from the same seed reproduces the committed golden outputs (what training computed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo

# With op determinism on and the same CPU kernels, retraining is bit-for-bit reproducible here
# (seen: identical golden.json). oneDNN may pick other kernels on another CPU, so allow a small
# bound rather than equality: far below what any skew bug produces (differences of 1e-2 and up).
RETRAIN_ATOL = 1e-4


@pytest.mark.slow
def test_retraining_churn_with_the_same_seed_reproduces_the_committed_golden_outputs(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "training.train", "--out", str(tmp_path), "--seed", "42", "--model", "churn"],
        cwd=zoo.ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    again = json.loads((tmp_path / "churn" / "golden.json").read_text())
    committed = zoo.golden("churn")
    assert [c["request"] for c in again["cases"]] == [c["request"] for c in committed["cases"]]
    for old, new in zip(committed["cases"], again["cases"], strict=True):
        assert sorted(new["expected"]) == sorted(old["expected"]) == ["output_0"]
        exp, got = np.asarray(old["expected"]["output_0"]), np.asarray(new["expected"]["output_0"])
        assert got.shape == exp.shape, old["name"]
        assert np.abs(got - exp).max() <= RETRAIN_ATOL, f"{old['name']}: off by {np.abs(got - exp).max():.3g}"
    manifest = json.loads((tmp_path / "churn" / "manifest.json").read_text())
    assert manifest["files"]["preprocessing.json"] == zoo.manifest("churn")["files"]["preprocessing.json"]


@pytest.mark.slow
def test_make_artifacts_keeps_the_committed_files_byte_for_byte_when_the_answers_agree(tmp_path: Path) -> None:
    """Run twice on a copy of the committed artifacts under git: nothing may be left modified."""
    copy = tmp_path / "repo"
    (copy / "model_artifacts").mkdir(parents=True)
    for model in ("churn", "recommender"):
        shutil.copytree(zoo.model_dir(model), copy / "model_artifacts" / model)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(copy)]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "committed"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    out = str(copy / "model_artifacts")
    for attempt in (1, 2):
        run = subprocess.run(
            [sys.executable, "-m", "training.train", "--out", out, "--model", "churn", "--model", "recommender"],
            cwd=zoo.ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout + run.stderr[-2000:]
        said = [line for line in run.stdout.splitlines() if line.startswith(("churn:", "recommender:"))]
        assert len(said) == 2 and all("kept the committed files" in line for line in said), said
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        assert status == "", f"run {attempt} left the committed artifacts modified:\n{status}"

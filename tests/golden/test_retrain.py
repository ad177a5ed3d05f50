"""Retraining churn from the same seed reproduces the committed golden outputs (what training computed)."""

from __future__ import annotations

import json
import os
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

"""Changing an artifact as a re-export would: the manifest's hashes and its digest redone.

Tests that ship a changed file on purpose (a preprocessing that differs from training, a model with
another layer) stand for a complete re-export: integrity checks alone cannot catch those. A test of
the integrity checks themselves changes files without these helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handler.core.artifacts import DIGEST_KEY, manifest_digest, sha256_of


def write_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` into the folder with its digest redone, as the export writes it."""
    manifest[DIGEST_KEY] = manifest_digest(manifest)
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))


def edit_manifest(model_dir: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Change the manifest, then write it back with its digest redone."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    change(manifest)
    write_manifest(model_dir, manifest)


def rehash(model_dir: Path, *names: str) -> None:
    """Record the named files' (default: every listed file's) sha256 in the manifest, and its digest."""

    def redo(manifest: dict[str, Any]) -> None:
        for name in names or tuple(manifest["files"]):
            manifest["files"][name] = sha256_of(model_dir / name)

    edit_manifest(model_dir, redo)

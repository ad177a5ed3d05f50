"""The artifact contract: file names, the manifest, and the integrity checks made before serving."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from handler.errors import ArtifactError
from handler.preprocessing import Preprocessor

MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
PREPROCESSING_FILE = "preprocessing.json"
GOLDEN_FILE = "golden.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1

# Libraries whose version can change the model's numbers; recorded at export, compared at load
# for the runtime that serves (the LiteRT image has no TensorFlow, and that is no mismatch).
TRACKED_LIBRARIES = ("tensorflow-cpu", "keras", "numpy", "ai-edge-litert")
RUNTIME_LIBRARIES = {"tensorflow": ("tensorflow-cpu", "keras", "numpy"), "litert": ("ai-edge-litert", "numpy")}

log = logging.getLogger("skewless.artifacts")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that the golden outputs depend on, as installed here."""
    out: dict[str, str] = {"python": platform.python_version()}
    for lib in TRACKED_LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` promises about the other artifact files."""

    name: str
    version: str
    files: dict[str, str]
    versions: dict[str, str]
    custom_objects: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    runtimes: dict[str, dict[str, Any]]
    raw: dict[str, Any]

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / MANIFEST_FILE
        if not path.is_file():
            raise ArtifactError(
                f"{path} not found: MODEL_DIR must hold the files written by handler.export "
                f"(run `make artifacts` for the reference model)"
            )
        try:
            raw = json.loads(path.read_text())
            return cls(
                name=raw["model"]["name"],
                version=str(raw["model"]["version"]),
                files=dict(raw["files"]),
                versions=dict(raw["versions"]),
                custom_objects=list(raw["custom_objects"]),
                inputs=dict(raw["signature"]["inputs"]),
                outputs=dict(raw["signature"]["outputs"]),
                runtimes=dict(raw.get("runtimes", {})),
                raw=raw,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path} is not a valid skewless manifest: {exc!r}") from None

    def verify_files(self, model_dir: Path, names: list[str] | None = None) -> None:
        """Refuse to go on if any listed artifact is missing or differs from its recorded hash."""
        for fname in names if names is not None else sorted(self.files):
            expected = self.files.get(fname)
            if expected is None:
                raise ArtifactError(f"{fname} is not listed in {MANIFEST_FILE}: re-export the model")
            path = model_dir / fname
            if not path.is_file():
                raise ArtifactError(f"artifact {fname} listed in {MANIFEST_FILE} is missing from {model_dir}")
            actual = sha256_of(path)
            if actual != expected:
                raise ArtifactError(
                    f"artifact {fname} does not match {MANIFEST_FILE} (sha256 {actual[:12]}..., "
                    f"expected {expected[:12]}...): it was changed after export; re-export the "
                    f"model or restore the file"
                )

    def version_mismatches(self, runtime: str = "tensorflow") -> list[str]:
        """Human-readable differences between export-time and installed versions of what `runtime` uses.

        Python is compared by major.minor: a patch release does not change float arithmetic, and
        every base image has its own patch level.
        """
        here = library_versions()
        out = []
        for lib in ("python", *RUNTIME_LIBRARIES.get(runtime, TRACKED_LIBRARIES)):
            exported, installed = self.versions.get(lib), here.get(lib)
            if exported is None or installed is None:
                continue
            if lib == "python":
                exported, installed = ".".join(exported.split(".")[:2]), ".".join(installed.split(".")[:2])
            if installed != exported:
                out.append(f"{lib} {installed} installed, model exported with {exported}")
        return out


@dataclass(frozen=True)
class Artifacts:
    """A verified model directory: the manifest and the fitted preprocessing."""

    model_dir: Path
    manifest: Manifest
    preprocessor: Preprocessor

    @property
    def model_path(self) -> Path:
        return self.model_dir / MODEL_FILE

    @property
    def litert_path(self) -> Path:
        return self.model_dir / LITERT_FILE

    @classmethod
    def open(cls, model_dir: Path) -> Artifacts:
        """Check every hash, then read the preprocessing. Does not import TensorFlow."""
        manifest = Manifest.load(model_dir)
        manifest.verify_files(model_dir)
        try:
            pre = Preprocessor.load(model_dir / PREPROCESSING_FILE)
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{PREPROCESSING_FILE} is not valid: {exc}") from None
        width = manifest.inputs.get("shape", [None, None])[1]
        if width != pre.output_width:
            raise ArtifactError(
                f"{MANIFEST_FILE} says the model takes {width} inputs but {PREPROCESSING_FILE} "
                f"produces {pre.output_width}: the two files come from different exports"
            )
        return cls(model_dir=model_dir, manifest=manifest, preprocessor=pre)

    def golden(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.model_dir / GOLDEN_FILE).read_text())
        return data

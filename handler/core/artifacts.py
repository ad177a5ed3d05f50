"""The artifact contract: file names, the manifest, and the integrity checks made before serving.

Every file the server reads is listed in `manifest.json` with its sha256. A file with an artifact's
name that the manifest does not list is refused, not ignored: a `model.tflite` dropped beside a
manifest that never mentions it must not be served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handler.core.preprocessing import Preprocessor
from handler.core.signature import Signature
from handler.core.signature_check import feature_differences
from handler.core.versions import installed_versions
from handler.errors import ArtifactError

MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
PREPROCESSING_FILE = "preprocessing.json"
GOLDEN_FILE = "golden.json"
BASELINE_FILE = "baseline.json"
QUALITY_FILE = "quality_baseline.json"  # the metrics on held-out data that served labels are compared with
MANIFEST_FILE = "manifest.json"
# 3: the manifest carries a digest of its own content.
MANIFEST_FORMAT = 3
DIGEST_KEY = "digest"
# Files the server may read; each present one must be listed in the manifest.
ARTIFACT_FILES = (MODEL_FILE, LITERT_FILE, PREPROCESSING_FILE, GOLDEN_FILE, BASELINE_FILE, QUALITY_FILE)
REQUIRED_FILES = (MODEL_FILE, GOLDEN_FILE)
# The source of the custom-object modules the export bundled (handler.core.artifact_code): code/<path>.py,
# each listed in the manifest like any artifact file; a file under code/ that it does not list is refused.
CODE_DIR = "code"

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


def manifest_digest(raw: dict[str, Any]) -> str:
    """The sha256 of a manifest's canonical content (every key but the digest; sorted keys, no spaces).

    It covers every file (their hashes are in the manifest), the signature and the versions: a hand edit
    of any of them, hashes redone or not, no longer matches the digest the export wrote. A deployment may
    pin it (MODEL_DIGEST) to serve only the artifact it was deployed with.
    """
    content = {k: v for k, v in raw.items() if k != DIGEST_KEY}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def is_code_file(name: str) -> bool:
    """A manifest name of bundled source: code/<importable path>.py, with no way out of code/."""
    parts = name.split("/")
    return (
        len(parts) >= 2
        and parts[0] == CODE_DIR
        and name.endswith(".py")
        and all(p.isidentifier() for p in (*parts[1:-1], parts[-1][:-3]))
    )


def _refuse_unlisted_code(model_dir: Path, listed: dict[str, str]) -> None:
    """Every file under code/ must be listed: the server imports from there, so an extra one could shadow a module."""
    root = model_dir / CODE_DIR
    if not root.exists() and not root.is_symlink():
        return
    found = [root] if not root.is_dir() or root.is_symlink() else []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += [Path(folder, d) for d in dirs if Path(folder, d).is_symlink()]
        found += [Path(folder, f) for f in sorted(files)]
    for path in found:
        name = path.relative_to(model_dir).as_posix()
        if name not in listed:
            raise ArtifactError(
                f"{name} is in {model_dir} but not listed in {MANIFEST_FILE}: the server imports only code the "
                f"export hashed; remove it or re-export the model"
            )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that the golden outputs depend on, as installed here."""
    out: dict[str, str] = {"python": platform.python_version()}
    for lib, version in installed_versions(TRACKED_LIBRARIES).items():  # not importlib.metadata: ~15 ms to import
        out[lib] = version or "not installed"
    return out


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` promises about the other artifact files."""

    name: str
    version: str
    files: dict[str, str]
    versions: dict[str, str]
    custom_objects: list[str]
    signature: Signature
    runtimes: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    digest: str = ""

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / MANIFEST_FILE
        if not path.is_file():
            raise ArtifactError(
                f"{path} not found: MODEL_DIR must hold the files written by handler.export "
                f"(run `make artifacts` for the reference models)"
            )
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format_version") != MANIFEST_FORMAT:
            found = raw.get("format_version") if isinstance(raw, dict) else None
            raise ArtifactError(
                f"{path} has manifest format {found!r}, this server reads format {MANIFEST_FORMAT}: "
                f"re-export the model with this version of skewless"
            )
        digest = manifest_digest(raw)
        if raw.get(DIGEST_KEY) != digest:
            raise ArtifactError(
                f"{path} was edited after export: its content does not match its digest "
                f"({str(raw.get(DIGEST_KEY))[:19]}...); re-export the model instead of editing the manifest"
            )
        problem = _shape_problem(raw)
        if problem:
            raise ArtifactError(f"{path} is not a valid skewless manifest: {problem}")
        try:
            return cls(
                name=str(raw["model"]["name"]),
                version=str(raw["model"]["version"]),
                files={str(k): str(v) for k, v in dict(raw["files"]).items()},
                versions=dict(raw["versions"]),
                custom_objects=[str(c) for c in raw["custom_objects"]],
                signature=Signature.from_dict(raw["signature"]),
                runtimes=dict(raw.get("runtimes", {})),
                raw=raw,
                digest=digest,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"{path} is not a valid skewless manifest: {_why(exc)}") from None

    def verify_files(self, model_dir: Path) -> None:
        """Refuse to go on if a listed file is missing or changed, or an artifact file is not listed."""
        for fname in REQUIRED_FILES:
            if fname not in self.files:
                raise ArtifactError(f"{MANIFEST_FILE} does not list {fname}: re-export the model")
        for fname in ARTIFACT_FILES:
            if (model_dir / fname).exists() and fname not in self.files:
                raise ArtifactError(
                    f"{fname} is in {model_dir} but not listed in {MANIFEST_FILE}: the server reads only files "
                    f"the export hashed; remove it or re-export the model"
                )
        _refuse_unlisted_code(model_dir, self.files)
        for fname, expected in sorted(self.files.items()):
            if fname not in ARTIFACT_FILES and not is_code_file(fname):
                raise ArtifactError(f"{MANIFEST_FILE} lists {fname!r}, which is not an artifact of this format")
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
    """A verified model directory: the manifest, its signature and the fitted preprocessing (if any)."""

    model_dir: Path
    manifest: Manifest
    preprocessor: Preprocessor | None

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def model_path(self) -> Path:
        return self.model_dir / MODEL_FILE

    @property
    def litert_path(self) -> Path:
        return self.model_dir / LITERT_FILE

    @property
    def has_litert(self) -> bool:
        return LITERT_FILE in self.manifest.files

    @classmethod
    def open(cls, model_dir: Path, pin: str | None = None) -> Artifacts:
        """Check the manifest's digest (and the pinned one), every hash, then read the preprocessing.

        Does not import TensorFlow.
        """
        manifest = Manifest.load(model_dir)
        if pin and manifest.digest != pin:
            raise ArtifactError(
                f"MODEL_DIGEST pins {pin[:19]}..., but the artifact in {model_dir} is {manifest.digest[:19]}...: "
                f"this function serves only the model it was deployed with"
            )
        manifest.verify_files(model_dir)
        pre = None
        if PREPROCESSING_FILE in manifest.files:
            try:
                pre = Preprocessor.load(model_dir / PREPROCESSING_FILE)
            except (ValueError, KeyError, TypeError) as exc:
                raise ArtifactError(f"{PREPROCESSING_FILE} is not valid: {exc}") from None
            _check_preprocessing(manifest.signature, pre)
        elif [f.name for f in manifest.signature.features] != [i.name for i in manifest.signature.inputs]:
            raise ArtifactError(
                f"{MANIFEST_FILE} describes raw features apart from the model's inputs but lists no "
                f"{PREPROCESSING_FILE}: the two files come from different exports"
            )
        _check_features(manifest.signature, pre)
        return cls(model_dir=model_dir, manifest=manifest, preprocessor=pre)

    def golden(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.model_dir / GOLDEN_FILE).read_text())
        return data


def _check_preprocessing(signature: Signature, pre: Preprocessor) -> None:
    """preprocessing.json and the manifest must describe the same features and the same model input."""
    if pre.names != signature.feature_names:
        raise ArtifactError(
            f"{PREPROCESSING_FILE} has features {pre.names} but {MANIFEST_FILE} lists "
            f"{signature.feature_names}: the two files come from different exports"
        )
    model_input = signature.inputs[0]
    if len(signature.inputs) != 1 or model_input.shape != (pre.output_width,):
        raise ArtifactError(
            f"{MANIFEST_FILE} says the model takes {[i.describe() for i in signature.inputs]} but "
            f"{PREPROCESSING_FILE} produces one float matrix of width {pre.output_width}: the two files "
            f"come from different exports"
        )


def _check_features(signature: Signature, pre: Preprocessor | None) -> None:
    """What a client sends, as the manifest says, is what preprocessing.json reads (or the model's inputs, without
    one), to the dtype, shape, id range and strict values: the server coerces by the one and feeds the other."""
    source = PREPROCESSING_FILE if pre is not None else "its inputs"
    problems = feature_differences(signature.features, pre.feature_specs() if pre else signature.inputs, source)
    if problems:
        raise ArtifactError(
            f"{MANIFEST_FILE}'s features do not match {source}: {'; '.join(problems)}; re-export the model instead "
            f"of editing the manifest"
        )


def _why(exc: BaseException) -> str:
    """A malformed manifest's fault in words: the missing key, or the exception's own message."""
    if isinstance(exc, KeyError):
        return f"the key {exc.args[0]!r} is missing"
    return f"{type(exc).__name__}: {exc}"


def _shape_problem(raw: dict[str, Any]) -> str | None:
    """What is wrong with the manifest's layout, in words (None: the keys and types the server reads are there)."""
    for key, kind in (
        ("model", dict),
        ("files", dict),
        ("versions", dict),
        ("custom_objects", list),
        ("signature", dict),
    ):
        if key not in raw:
            return f"the key {key!r} is missing"
        if not isinstance(raw[key], kind):
            return f"{key!r} must be {'an object' if kind is dict else 'a list'}"
    for side in ("features", "inputs", "outputs"):
        specs = raw["signature"].get(side)
        if not isinstance(specs, list) or not all(isinstance(t, dict) for t in specs):
            return f"signature.{side} must be a list of tensors ({{name, dtype, shape}} objects)"
    return None

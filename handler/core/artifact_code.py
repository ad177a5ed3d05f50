"""The custom-object code an artifact carries in `code/`: imported from there, before anything on sys.path.

The export copies the source of the user's custom-object modules into `code/` and lists every file in the
manifest with its sha256; `Artifacts.open` has checked them all (and refused any file under `code/` it does
not list) before this runs. They are imported with `code/` as their only path, so neither PYTHONPATH nor
CUSTOM_OBJECT_MODULES is needed, and no module of the same name elsewhere can stand in for them: one already
imported is replaced. Their source is compiled from the checked files each time: no bytecode is read from
or written into the artifact. Modules of the installed environment (`handler.custom_objects`, a pip-installed
package) are recorded by name and distribution version instead, and imported by name.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import FileFinder, ModuleSpec, PathFinder, SourceFileLoader
from importlib.util import module_from_spec
from pathlib import Path
from types import ModuleType
from typing import Any

from handler.core.artifacts import CODE_DIR, MANIFEST_FILE, is_code_file
from handler.errors import ArtifactError, ModelLoadError

log = logging.getLogger("skewless.code")

CODE_KEY = "code"  # the manifest's record of the custom-object modules: bundled, or of the environment


def is_module_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and all(part.isidentifier() for part in name.split("."))


@dataclass(frozen=True)
class BundledModule:
    """A module whose source the artifact carries: its files, as the manifest names them (code/...)."""

    name: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class InstalledModule:
    """A module of the installed environment: imported by name; its distribution's version as at export."""

    name: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class CodeRecord:
    bundled: tuple[BundledModule, ...] = ()
    installed: tuple[InstalledModule, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.bundled) + tuple(m.name for m in self.installed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundled": [{"module": m.name, "files": list(m.files)} for m in self.bundled],
            "installed": [
                {"module": m.name, "distribution": m.distribution, "version": m.version} for m in self.installed
            ],
        }

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any], listed: Mapping[str, str]) -> CodeRecord:
        """The manifest's `code` record (none: an export that bundled nothing); malformed is an ArtifactError."""
        record = raw.get(CODE_KEY)
        if record is None:
            return cls()
        try:
            bundled = tuple(_bundled(entry, listed) for entry in record["bundled"])
            installed = tuple(_installed(entry) for entry in record["installed"])
        except KeyError as exc:
            raise ArtifactError(f"{MANIFEST_FILE}'s {CODE_KEY!r} record is not valid: {exc} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{MANIFEST_FILE}'s {CODE_KEY!r} record is not valid: {exc}") from None
        return cls(bundled, installed)


def _bundled(entry: Mapping[str, Any], listed: Mapping[str, str]) -> BundledModule:
    name, files = entry["module"], entry["files"]
    if not is_module_name(name) or not isinstance(files, list) or not files:
        raise ValueError(f"a bundled module needs a module name and its files, got {dict(entry)!r}")
    for f in files:
        if not isinstance(f, str) or not is_code_file(f) or f not in listed:
            raise ValueError(f"bundled module {name}'s file {f!r} is not a code/ file listed in 'files'")
    return BundledModule(name, tuple(files))


def _installed(entry: Mapping[str, Any]) -> InstalledModule:
    name, dist, version = entry["module"], entry.get("distribution"), entry.get("version")
    if not is_module_name(name) or not all(v is None or isinstance(v, str) for v in (dist, version)):
        raise ValueError(f"an installed module needs a module name, got {dict(entry)!r}")
    return InstalledModule(name, dist, version)


class _CheckedSource(SourceFileLoader):
    """Compiles the checked .py file itself: no __pycache__ read (it could shadow the source) or written."""

    def path_stats(self, path: str) -> Mapping[str, Any]:
        raise OSError("artifact code is compiled from its source")


def _register_finders(code_dir: Path) -> None:
    """Every folder of code/ finds only .py files, loaded by `_CheckedSource` (never a .so, never bytecode)."""
    for folder, dirs, _ in os.walk(code_dir):
        dirs[:] = [d for d in dirs if d.isidentifier()]
        sys.path_importer_cache[folder] = FileFinder(folder, (_CheckedSource, [".py"]))


def _location(code_dir: Path, dotted: str) -> Path:
    return code_dir.joinpath(*dotted.split(".")) if dotted else code_dir


def _is_from(module: ModuleType | None, code_dir: Path) -> bool:
    spec = getattr(module, "__spec__", None)
    places = [spec.origin, *(spec.submodule_search_locations or [])] if spec is not None else []
    return any(p and Path(p).is_relative_to(code_dir) for p in places)


class _BundledFinder(MetaPathFinder):
    """While the bundled modules import, their names (and their packages) resolve to code/ first."""

    def __init__(self, code_dir: Path, names: Sequence[str]) -> None:
        self.code_dir, self.names = code_dir, tuple(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname in self.names:
            spec = PathFinder.find_spec(fullname, [str(_location(self.code_dir, fullname.rpartition(".")[0]))])
            if spec is None:  # never fall through to sys.path for a module the artifact says it carries
                raise ModuleNotFoundError(f"{CODE_DIR}/ holds no source for {fullname}", name=fullname)
            return spec
        folder = _location(self.code_dir, fullname)
        if any(n.startswith(fullname + ".") for n in self.names) and folder.is_dir():
            # A bundled submodule's package: a namespace over its code/ folder (its other modules are not carried).
            spec = ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
            return spec
        return None


def import_artifact_code(model_dir: Path, record: CodeRecord) -> None:
    """Import the bundled modules from model_dir/code/ (replacing any of the same name), then the installed ones."""
    if record.bundled:
        code_dir = (model_dir / CODE_DIR).resolve()
        names = [m.name for m in record.bundled]
        _register_finders(code_dir)
        for key in [k for k in sys.modules if any(k == n or k.startswith(n + ".") for n in names)]:
            del sys.modules[key]  # imported from elsewhere: the artifact's code replaces it, submodules included
        finder = _BundledFinder(code_dir, names)
        sys.meta_path.insert(0, finder)  # only for the import itself: later imports find them in sys.modules
        try:
            for name in names:
                _load(code_dir, name)
        finally:
            sys.meta_path.remove(finder)
    for module in record.installed:
        _import_installed(module)


def _load(code_dir: Path, name: str) -> None:
    """One bundled module from code/: find its spec there, make the module, register it, run it."""
    if _is_from(sys.modules.get(name), code_dir):
        return  # already imported in this pass, by another bundled module
    parent, _, leaf = name.rpartition(".")
    spec = PathFinder.find_spec(name, [str(_location(code_dir, parent))])
    if spec is None or spec.loader is None:
        raise ArtifactError(f"{MANIFEST_FILE} says {CODE_DIR}/ carries {name}, but it holds no source for it")
    try:
        if parent:
            importlib.import_module(parent)
        module = module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module fails on import: say which, without a traceback
        sys.modules.pop(name, None)
        raise ModelLoadError(
            f"the custom object module {name}, carried in {CODE_DIR}/, fails on import: {type(exc).__name__}: {exc}"
        ) from None
    if parent:
        setattr(sys.modules[parent], leaf, module)


def _import_installed(module: InstalledModule) -> None:
    wanted = f"{module.distribution}=={module.version}" if module.distribution and module.version else module.name
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        raise ModelLoadError(
            f"the model's custom objects need {module.name} (recorded at export as installed, from {wanted}), "
            f"which cannot be imported here ({exc}): install {wanted} in the image"
        ) from None
    if module.distribution and module.version:
        from importlib import metadata  # lazily: ~15 ms to import, and only a carried model's load needs it here

        try:
            here = metadata.version(module.distribution)
        except metadata.PackageNotFoundError:
            return  # it imports, so it is there another way (the image copies handler/ without its metadata)
        if here != module.version:
            log.warning("%s is %s here, the model was exported with %s", module.distribution, here, module.version)

"""The custom-object modules' source, bundled into the artifact's code/ folder so the artifact is self-contained.

A module of the user's (a file, or a package folder with all its .py files) is copied into code/ and each file
is listed in the manifest with its sha256; a module of the installed environment (`handler`, anything in
site-packages, the standard library) is recorded by name and distribution version instead. A compiled
extension cannot travel in an artifact (it is built for one platform and Python): it is refused, with the fix.
The server imports the copies (handler.core.artifact_code); so does the export's own replay, in `isolated`.
"""

from __future__ import annotations

import ast
import importlib.util
import platform
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from pathlib import Path
from typing import Any

from handler.core.artifact_code import BundledModule, CodeRecord, InstalledModule
from handler.core.artifacts import CODE_DIR, sha256_of
from handler.errors import ExportError

_COMPILED = tuple({*EXTENSION_SUFFIXES, ".so", ".pyd"})
# The package every serving image has: its modules are never copied.
_SERVING_PACKAGE = "handler"


def bundle(modules: Sequence[str], staging: Path) -> CodeRecord:
    """Copy each user module's source into staging/code/; record the environment's modules by name and version."""
    bundled: list[BundledModule] = []
    installed: list[InstalledModule] = []
    for name in dict.fromkeys(modules):
        spec = _find(name)
        environment = _environment(name, spec)
        if environment is not None:
            installed.append(environment)
            continue
        files = []
        for source, relative in _sources(name, spec):
            dest = staging / CODE_DIR / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            files.append(f"{CODE_DIR}/{relative}")
        bundled.append(BundledModule(name, tuple(files)))
    record = CodeRecord(tuple(bundled), tuple(installed))
    _refuse_imports_left_behind(record, staging / CODE_DIR)
    return record


def code_hashes(staging: Path) -> dict[str, str]:
    """{code/...: sha256} of every file bundled into staging, for the manifest's `files`."""
    root = staging / CODE_DIR
    return {p.relative_to(staging).as_posix(): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _find(name: str) -> ModuleSpec:
    module = sys.modules.get(name)
    spec: ModuleSpec | None = getattr(module, "__spec__", None) if module is not None else None
    if spec is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise ExportError(f"the custom object module {name} cannot be found: {exc}") from None
    if spec is None:
        raise ExportError(
            f"the custom object module {name} cannot be found: make it importable where you export (for the "
            f"command line, run it from the folder that holds {name.split('.')[0]})"
        )
    return spec


def _places(spec: ModuleSpec) -> list[str]:
    return [p for p in (spec.origin, *(spec.submodule_search_locations or [])) if p]


@cache
def _distributions() -> Mapping[str, list[str]]:
    """{top-level module: distributions}: a tenth of a second to read, asked for every import of the bundle."""
    return metadata.packages_distributions()


def _environment(name: str, spec: ModuleSpec) -> InstalledModule | None:
    """The record of a module of the installed environment, or None for one of the user's, to bundle."""
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or spec.origin in ("built-in", "frozen"):
        return InstalledModule(name, "python", platform.python_version())
    in_site = any({"site-packages", "dist-packages"} & set(Path(p).parts) for p in _places(spec))
    if top != _SERVING_PACKAGE and not in_site:
        return None
    found = _distributions().get(top) or (["skewless"] if top == _SERVING_PACKAGE else [])
    distribution = found[0] if found else None
    version = None
    if distribution is not None:
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            version = None
    return InstalledModule(name, distribution, version)


def _compiled(name: str, what: Path) -> ExportError:
    return ExportError(
        f"the custom object module {name} is not pure Python source: {what} is a compiled extension, which an "
        f"artifact cannot carry (it is built for one platform and Python). Install it as a package (pip install), "
        f"in your environment and in the image, so the export records it by name and version instead of copying "
        f"it; or keep the custom layers in a pure-Python module"
    )


def _sources(name: str, spec: ModuleSpec) -> list[tuple[Path, str]]:
    """(file, its path under code/) of the module's source: the file, or every .py file of the package."""
    parts = name.split(".")
    origin = Path(spec.origin) if spec.origin else None
    if origin is not None and origin.name.endswith(_COMPILED):
        raise _compiled(name, origin)
    if spec.submodule_search_locations is None:
        if origin is None or origin.suffix != ".py" or not origin.is_file():
            raise ExportError(
                f"the custom object module {name} has no Python source file ({spec.origin}): the artifact "
                f"carries .py files only; export from the module's source"
            )
        return [(origin, "/".join(parts) + ".py")]
    if origin is None or origin.name != "__init__.py":
        raise ExportError(
            f"the custom object module {name} is a namespace package (a folder without __init__.py): add an "
            f"__init__.py to bundle the folder, or name the module that defines the layers"
        )
    folder = origin.parent
    compiled = sorted(p for p in folder.rglob("*") if p.name.endswith(_COMPILED))
    if compiled:
        raise _compiled(name, compiled[0])
    files = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        # Only importable paths: a script named my-tool.py could never be imported from code/ anyway.
        if all(p.isidentifier() for p in (*relative.parts[:-1], relative.stem)):
            files.append((path, "/".join([*parts, *relative.parts])))
    return files


def _imported_names(tree: ast.Module, package: str) -> Iterator[str]:
    """The absolute names a module imports (relative imports resolved against its package)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            pkg = package.split(".") if package else []
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # from . import x: x may be a module
                yield from (f"{module}.{alias.name}" for alias in node.names)
            elif module:
                yield module


def _refuse_imports_left_behind(record: CodeRecord, code_dir: Path) -> None:
    """A bundled module importing one of the user's modules that is neither bundled nor installed would import
    here (the training folder is on the path) but fail in the image: refuse now, naming it."""
    carried = {m.name for m in record.bundled}
    for module in record.bundled:
        for file in module.files:
            relative = Path(file).relative_to(CODE_DIR)
            dotted = ".".join(relative.with_suffix("").parts)
            package = dotted.removesuffix(".__init__") if relative.name == "__init__.py" else dotted.rpartition(".")[0]
            tree = ast.parse((code_dir / relative).read_bytes(), filename=file)
            for imported in _imported_names(tree, package):
                if _served(imported, carried):
                    continue
                raise ExportError(
                    f"{file} imports {imported}, which the artifact does not carry and the environment does not "
                    f"install: the image could not import it. Name it too (custom_object_modules, or "
                    f"--custom-object-module {imported}), or install it as a package"
                )


def _served(imported: str, carried: set[str]) -> bool:
    """Whether `imported` resolves where the artifact is served: carried in code/, or of the environment."""
    parts = imported.split(".")
    if any(".".join(parts[:i]) in carried for i in range(1, len(parts) + 1)):
        return True  # a carried module, or one of a carried package (which carries all of its .py files)
    if any(c.startswith(imported + ".") for c in carried):
        return True  # a carried submodule's package (a namespace over code/)
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return True
    # Not importable here either: an optional import, failing alike at export and when served.
    return spec is None or _environment(parts[0], spec) is not None


@contextmanager
def isolated(staging: Path) -> Iterator[None]:
    """Run the export's replay with the staged code/ modules, then give the training process its own back.

    The replay imports the copies in staging/code/, which replace the user's modules in sys.modules and
    their classes in Keras' registry; afterwards the script goes on with the classes it trained with.
    """
    from keras.src.saving import object_registration as registry  # the registry's two dicts, to restore

    root = (staging / CODE_DIR).resolve()
    modules = dict(sys.modules)
    objects, names = dict(registry.GLOBAL_CUSTOM_OBJECTS), dict(registry.GLOBAL_CUSTOM_NAMES)
    try:
        yield
    finally:
        staged = {k for k, m in sys.modules.items() if modules.get(k) is not m and _under(m, root)}
        replaced = {k for k in modules if k not in sys.modules}  # the user's, dropped for the staged copies
        changed = [k for k, o in registry.GLOBAL_CUSTOM_OBJECTS.items() if objects.get(k) is not o]
        for key in [k for k in changed if getattr(registry.GLOBAL_CUSTOM_OBJECTS[k], "__module__", None) in staged]:
            if key in objects:
                registry.GLOBAL_CUSTOM_OBJECTS[key] = objects[key]
            else:
                del registry.GLOBAL_CUSTOM_OBJECTS[key]
        for cls in [c for c in registry.GLOBAL_CUSTOM_NAMES if c not in names and c.__module__ in staged]:
            del registry.GLOBAL_CUSTOM_NAMES[cls]
        for key in sorted(staged | replaced):
            _restore(key, modules.get(key))
        for path in [p for p in sys.path_importer_cache if Path(p).is_relative_to(root)]:
            del sys.path_importer_cache[path]


def _under(module: Any, root: Path) -> bool:
    spec = getattr(module, "__spec__", None)
    return spec is not None and any(Path(p).is_relative_to(root) for p in _places(spec))


def _restore(key: str, before: Any) -> None:
    parent, _, leaf = key.rpartition(".")
    if before is None:
        sys.modules.pop(key, None)
    else:
        sys.modules[key] = before
    holder = sys.modules.get(parent) if parent else None
    if holder is not None and before is not None:
        setattr(holder, leaf, before)
    elif holder is not None and hasattr(holder, leaf):
        delattr(holder, leaf)

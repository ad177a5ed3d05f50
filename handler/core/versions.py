"""Installed distributions' versions, read without importlib.metadata.

Importing importlib.metadata takes about 15 ms (email, zipfile, csv and more come with it), and every cold
start reads the versions the golden answers depend on (artifacts.library_versions). Installers write one
`<name>-<version>.dist-info` (or `.egg-info`) folder per distribution into the folder it is installed in, with
its version in the `Version:` line of its METADATA (PKG-INFO); the first one on sys.path is the one an import
finds, as importlib.metadata also takes it.
"""

from __future__ import annotations

import os
import re
import sys


def _normalized(name: str) -> str:
    """A distribution name as its folder spells it, and as PEP 503 compares names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def installed_versions(distributions: tuple[str, ...]) -> dict[str, str | None]:
    """The version of each distribution that this interpreter imports (the first on sys.path); None: not installed.

    One listing of each sys.path folder for all of them.
    """
    wanted: dict[str, list[str]] = {}
    for d in distributions:
        wanted.setdefault(_normalized(d), []).append(d)
    found: dict[str, str | None] = dict.fromkeys(distributions)
    for entry in sys.path:
        if not wanted:
            break
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:  # a zip file, a folder that is gone
            continue
        for name in names:
            suffix = ".dist-info" if name.endswith(".dist-info") else ".egg-info" if name.endswith(".egg-info") else ""
            if not suffix:
                continue
            key = _normalized(name[: -len(suffix)].partition("-")[0])
            if key not in wanted:
                continue
            version = _metadata_version(os.path.join(folder, name))
            if version is not None:
                for distribution in wanted.pop(key):
                    found[distribution] = version
    return found


def _metadata_version(folder: str) -> str | None:
    """The `Version:` header of a distribution's metadata file (headers come first, one per line)."""
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, file), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line[len("Version:") :].strip()
                    if not line.strip():  # the headers end at the first empty line
                        break
        except OSError:
            continue
    return None

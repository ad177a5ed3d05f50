"""Print the pinned requirements that serving needs, read from pyproject.toml (one per line).

Usage: python serving_requirements.py PYPROJECT [--with NAME ...] [--runtime tensorflow|litert]
`--with awslambdaric` adds that package at the version pinned in any optional-dependency group;
`--runtime litert` leaves out TensorFlow and what only it needs (the LiteRT-only image).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


# Needed by the TensorFlow runtime only: the LiteRT runtime runs model.tflite with numpy.
TENSORFLOW_ONLY = {"tensorflow-cpu", "keras", "h5py", "ml-dtypes"}


def serving_requirements(pyproject: Path, extra_names: list[str], runtime: str = "tensorflow") -> list[str]:
    """The project's dependencies, plus the named packages pinned in its optional groups."""
    project = tomllib.loads(pyproject.read_text())["project"]
    out = list(project["dependencies"])
    if runtime == "litert":
        out = [req for req in out if _name(req) not in TENSORFLOW_ONLY]
    optional = [req for group in project.get("optional-dependencies", {}).values() for req in group]
    for wanted in extra_names:
        found = [req for req in optional if _name(req) == _name(wanted)]
        if not found:
            raise SystemExit(f"{wanted} is not pinned in any optional-dependencies group of {pyproject}")
        out.append(found[0])
    unpinned = [req for req in out if "==" not in req]
    if unpinned:
        raise SystemExit(f"serving requirements must be pinned with '==': {', '.join(unpinned)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="NAME")
    parser.add_argument("--runtime", choices=("tensorflow", "litert"), default="tensorflow")
    args = parser.parse_args(argv)
    print("\n".join(serving_requirements(args.pyproject, args.extra, args.runtime)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

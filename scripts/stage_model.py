"""Put artifact folders, from anywhere, into the image build's context: `python scripts/stage_model.py SRC [DST]`.

SRC is one exported artifact folder (it holds manifest.json) or a folder of them. DST (default
build-inputs/models) is emptied, then holds one folder per model, named by its manifest. Each artifact
is checked first (its manifest's digest and every hash), so a damaged folder fails here, not in the
build. Prints the model name and its digest, one line per model, for ModelName and ModelDigest.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from handler.core.artifacts import MANIFEST_FILE, Manifest
from handler.errors import SkewlessError

DEFAULT_DST = Path("build-inputs/models")


def artifact_folders(src: Path) -> list[Path]:
    if (src / MANIFEST_FILE).is_file():
        return [src]
    found = sorted(p for p in src.iterdir() if (p / MANIFEST_FILE).is_file()) if src.is_dir() else []
    if not found:
        raise SystemExit(f"error: {src} holds no exported model (no {MANIFEST_FILE} in it or in its folders)")
    return found


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        raise SystemExit(__doc__)
    src, dst = Path(argv[0]), Path(argv[1]) if len(argv) == 2 else DEFAULT_DST
    staged: list[tuple[str, str]] = []
    for folder in artifact_folders(src):
        try:
            manifest = Manifest.load(folder)
            manifest.verify_files(folder)
        except SkewlessError as exc:
            raise SystemExit(f"error: {exc.message}") from None
        staged.append((manifest.name, manifest.digest))
    if dst.resolve() == src.resolve():
        return 0
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for folder, (name, digest) in zip(artifact_folders(src), staged, strict=True):
        shutil.copytree(folder, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        print(f"{name} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

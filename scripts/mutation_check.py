"""Apply each mutant of scripts/mutants.py to a fresh copy of the committed tree and run the tests that must catch it.

    python scripts/mutation_check.py [--only SUBSTRING] [--json OUT]

A mutant is caught when its tests fail. The unmutated copy must pass the same tests first, so a
failing test suite is never counted as catching anything. Prints a table and exits 1 if any
mutant survives.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import Mutant  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def copy_tree(dst: Path) -> None:
    """The committed tree (HEAD), without venvs, caches or anyone's uncommitted edits."""
    dst.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)


def committed_mutants(tree: Path) -> tuple[Mutant, ...]:
    """The mutants as the committed tree lists them: they name text of that tree's code."""
    spec = importlib.util.spec_from_file_location("committed_mutants", tree / "scripts" / "mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    mutants: tuple[Mutant, ...] = module.MUTANTS
    return mutants


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not sam", *tests],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.monotonic() - start, tail[-1] if tail else ""


def apply(tree: Path, m: Mutant) -> None:
    path = tree / m.path
    text = path.read_text()
    if text.count(m.find) != 1:
        raise SystemExit(f"mutant '{m.name}': the text to change occurs {text.count(m.find)} times in {m.path}")
    path.write_text(text.replace(m.find, m.replace))
    if path.suffix == ".py":
        compile(path.read_text(), str(path), "exec")  # a mutant must be a bug, not a syntax error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run the mutants whose name contains this")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="skewless-mutants-") as tmp:
        base = Path(tmp) / "base"
        copy_tree(base)
        chosen = [m for m in committed_mutants(base) if not args.only or args.only in m.name]
        union = tuple(sorted({t for m in chosen for t in m.tests}))
        code, seconds, tail = run_tests(base, union)
        if code != 0:
            again = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not sam", *union],
                cwd=base, capture_output=True, text=True,
            )  # fmt: skip
            print(
                f"the unmutated tree fails its own tests ({tail}): fix that first\n{again.stdout[-3000:]}",
                file=sys.stderr,
            )
            return 2
        print(f"unmutated: {len(union)} test files pass ({seconds:.0f} s)")
        results = []
        for m in chosen:
            tree = Path(tmp) / "mutant"
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(base, tree)
            apply(tree, m)
            code, seconds, tail = run_tests(tree, m.tests)
            caught = code != 0
            results.append(
                {"mutant": m.name, "area": m.area, "caught": caught, "seconds": round(seconds, 1), "by": tail}
            )
            print(
                f"{'caught  ' if caught else 'SURVIVED'}  {m.area:<14} {m.name}  ({seconds:.0f} s: {tail})", flush=True
            )
    n_caught = sum(1 for r in results if r["caught"])
    print(f"\n{n_caught} of {len(results)} mutants caught")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"caught": n_caught, "total": len(results), "mutants": results}, indent=1))
    return 0 if n_caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

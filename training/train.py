"""Train the reference models and export each with `handler.export.export_model`.

    python -m training.train [--out model_artifacts] [--seed 42] [--model NAME ...] [--accept-changes]

Each model goes to `OUT/<name>/`. The new golden outputs are compared with the committed ones
first: if any case changed beyond the golden tolerance (or a case appeared or vanished), the
command says which and keeps the committed artifacts, unless `--accept-changes`. When the answers
agree, the committed files are kept byte for byte, except a `baseline.json` or `quality_baseline.json`
that today's code describes differently (or that the committed artifact lacks): it is put in place, with its
hash, the manifest's `problem` and the manifest's digest.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from training.common import Trained

MODELS = ("churn", "digits", "reviews", "recommender", "sensor")


def golden_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How the new golden cases differ from the old ones (empty: the same within tolerance)."""
    import numpy as np

    tol = new["tolerance"]
    old_cases = {c["name"]: c for c in old.get("cases", [])}
    new_cases = {c["name"]: c for c in new["cases"]}
    changes = [f"case {n} is new" for n in new_cases if n not in old_cases]
    changes += [f"case {n} is gone" for n in old_cases if n not in new_cases]
    for name in sorted(set(old_cases) & set(new_cases)):
        a, b = old_cases[name], new_cases[name]
        if a["request"] != b["request"] or a.get("batched") != b.get("batched"):
            changes.append(f"case {name}: the request changed")
            continue
        for out, exp in b["expected"].items():
            prev = a.get("expected", {}).get(out)
            if prev is None:
                changes.append(f"case {name}: output {out} is new")
                continue
            x, y = np.asarray(prev), np.asarray(exp)
            if x.shape != y.shape:
                changes.append(f"case {name}: output {out} changed shape {list(x.shape)} -> {list(y.shape)}")
            elif x.dtype.kind in "biuf" and not np.allclose(y, x, atol=tol["atol"], rtol=tol["rtol"]):
                changes.append(f"case {name}: output {out} changed by up to {float(np.max(np.abs(x - y))):.3g}")
            elif x.dtype.kind not in "biuf" and not np.array_equal(x, y):
                changes.append(f"case {name}: output {out} changed")
    return changes


def export(trained: Trained, out: Path) -> dict[str, Any]:
    from handler.export import export_model

    return export_model(
        trained.model,
        trained.preprocessor,
        trained.sample_requests,
        out,
        name=trained.name,
        version=trained.version,
        expected=trained.expected,
        description=trained.description,
        custom_object_modules=trained.custom_object_modules,
        training_data=trained.training_data,
        validation_data=trained.validation_data,
        holdout_data=trained.holdout_data,
    )


def train_and_export(name: str, out_root: Path, seed: int, accept: bool) -> bool:
    """Train one model, export it beside the committed one, compare, then replace it; False if refused."""
    start = time.monotonic()
    trained: Trained = importlib.import_module(f"training.{name}").train(seed)
    fresh = out_root / f".{name}.new"
    manifest = export(trained, fresh)
    target = out_root / name
    old_golden = target / "golden.json"
    had_old = old_golden.is_file()
    changes = (
        golden_changes(json.loads(old_golden.read_text()), json.loads((fresh / "golden.json").read_text()))
        if old_golden.is_file()
        else []
    )
    litert = manifest["runtimes"]["litert"]
    runtime = (
        "LiteRT and TensorFlow" if litert["golden_passed"] else f"TensorFlow only (LiteRT: {litert['reason'][:200]})"
    )
    cases = len(json.loads((fresh / "golden.json").read_text())["cases"])
    took = time.monotonic() - start
    if changes and not accept:
        shutil.rmtree(fresh)
        print(f"{name}: golden outputs CHANGED from the committed ones; kept the committed artifacts:")
        for line in changes:
            print(f"  {line}")
        print("  (rerun with --accept-changes to replace them)")
        return False
    if had_old and not changes and _servable(target):
        # The same answers within the tolerance: the committed files stay byte for byte (a retrained model differs
        # in the last digits, so every hash, and the manifest's digest, would change for nothing).
        refreshed = _refresh_baselines(fresh, target)
        shutil.rmtree(fresh)
        kept = "kept the committed files" + "".join(f", {name} refreshed" for name in refreshed)
        print(f"{name}: {cases} golden cases, same as committed within the tolerance: {kept}")
        return True
    if target.exists():
        shutil.rmtree(target)
    fresh.rename(target)
    what = "changed, accepted" if changes else ("replaced: the committed ones no longer load" if had_old else "new")
    print(f"{name}: {cases} golden cases ({what}), serves on {runtime}, {took:.1f} s")
    return True


def _refresh_baselines(fresh: Path, target: Path) -> list[str]:
    """Put the fresh export's baseline.json and quality_baseline.json in place of the committed ones where they
    differ (or are missing), with their hashes, the manifest's `problem` and its digest; the names put in place.

    The drift and quality statistics change more often than the models: they are fitted from the same seeded
    data (and answers equal within the golden tolerance), and the model files stay as committed.
    """
    from handler.core.artifacts import (
        BASELINE_FILE,
        DIGEST_KEY,
        MANIFEST_FILE,
        QUALITY_FILE,
        manifest_digest,
        sha256_of,
    )

    exported = json.loads((fresh / MANIFEST_FILE).read_text())
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    refreshed = []
    for name in (BASELINE_FILE, QUALITY_FILE):
        new, old = fresh / name, target / name
        if new.is_file() and not (old.is_file() and new.read_bytes() == old.read_bytes()):
            shutil.copyfile(new, old)
            refreshed.append(name)
    if not refreshed and exported.get("problem") == manifest.get("problem"):
        return []
    # The files in the export's order (a file the export would not write stays listed, last).
    order = [*exported["files"], *(n for n in manifest["files"] if n not in exported["files"])]
    hashes = {**manifest["files"], **{name: sha256_of(target / name) for name in refreshed}}
    manifest["files"] = {name: hashes[name] for name in order if name in hashes}
    if "problem" in exported:
        manifest["problem"] = exported["problem"]
    manifest.pop(DIGEST_KEY, None)
    manifest[DIGEST_KEY] = manifest_digest(manifest)  # last, as the export writes it
    (target / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return refreshed


def _servable(folder: Path) -> bool:
    """The committed artifacts still open with this version of the code (digest, hashes, format)."""
    from handler.core.artifacts import Artifacts
    from handler.errors import SkewlessError

    try:
        Artifacts.open(folder)
    except SkewlessError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("model_artifacts"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", action="append", choices=MODELS, help="only this model (repeatable)")
    parser.add_argument("--accept-changes", action="store_true", help="replace goldens that changed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ok = [train_and_export(name, args.out, args.seed, args.accept_changes) for name in args.model or MODELS]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Cold starts, timed from the moment each fresh process is spawned (issue 24): `python -m benchmarks.cold`.

Every figure is a process of its own, timed from just before the parent spawns it to its answer, so Python's
own start is in every figure alike. The probes run as `python -P benchmarks/cold.py NAME OUT.json` with
PYTHONPATH naming the code they time: nothing but the standard library is imported before the timed code
(benchmarks/probes.py imports numpy first), and `handler` is this tree's, or a copy of an older commit's
(`BASELINE`), so the two are timed side by side in one run. The alternatives run in alternation, repeated,
and each figure is the median of its runs; the goals are ratios of medians within the run.

Our modules are compiled first (compileall, as the Dockerfile does), as are the baseline's: Python would
compile them on every start otherwise wherever bytecode is not written (PYTHONDONTWRITEBYTECODE, a read-only
image), and that is a cost of the environment, not of the code.
"""

from __future__ import annotations

import json
import os
import sys
import time

# --- the child: one probe, in a process that has imported only the standard library ---------------------


def _child(name: str, out_path: str) -> None:
    spawned = float(os.environ["BENCH_SPAWNED"])  # the parent's time.monotonic() just before it spawned us
    model_dir = os.environ["MODEL_DIR"]
    result: dict[str, float] = {}
    if name == "floor_litert":
        import numpy  # noqa: F401
        from ai_edge_litert.interpreter import Interpreter

        # As the server loads it: one thread (core/model.py's LiteRTForward).
        Interpreter(model_path=os.path.join(model_dir, "model.tflite"), num_threads=1).get_signature_runner()
    elif name == "floor_tensorflow":
        import keras

        import handler.custom_objects  # noqa: F401  (the reference model's custom layer)

        keras.saving.load_model(os.path.join(model_dir, "model.keras"), compile=False, safe_mode=True)
    elif name == "import_tensorflow":
        import tensorflow  # noqa: F401
    elif name == "import_handler":
        _mark("init")
        t = time.perf_counter()
        import handler.app  # noqa: F401

        result["import"] = time.perf_counter() - t
    elif name == "first_answer":
        with open(os.environ["BENCH_EVENT"]) as fh:
            event = json.load(fh)
        _mark("init")
        t = time.perf_counter()
        import handler.app

        result["import"] = time.perf_counter() - t
        _mark("first request")
        answer = handler.app.lambda_handler(event, _Context())
        if answer.get("statusCode") != 200 or "predictions" not in json.loads(answer["body"]):
            raise SystemExit(f"the first answer is not a prediction: {answer}")
    elif name == "usual_way":
        with open(os.environ["BENCH_EVENT"]) as fh:
            event = json.load(fh)
        from benchmarks import usual_way

        answer = usual_way.lambda_handler(event, _Context())
        if answer.get("statusCode") != 200:
            raise SystemExit(f"the usual way did not answer: {answer}")
    else:
        raise SystemExit(f"no cold probe {name!r}")
    result["seconds"] = time.monotonic() - spawned
    result["cpu"] = time.process_time()  # this process' CPU time so far, every thread: what the machine's load leaves
    with open(out_path, "w") as fh:
        json.dump(result, fh)


def _mark(phase: str) -> None:
    """A line between `-X importtime`'s lines (both go to stderr, in order): what follows is this phase's."""
    if os.environ.get("BENCH_MARK"):
        print(f"BENCH_MARK {phase}", file=sys.stderr, flush=True)


class _Context:
    """What Powertools and the handler read of a Lambda context (benchmarks/lambda_context.py, inlined: the probe
    imports nothing of ours before the timed code)."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


if __name__ == "__main__" and len(sys.argv) == 3 and not sys.argv[1].startswith("-"):
    _child(sys.argv[1], sys.argv[2])
    raise SystemExit(0)


# --- the parent ----------------------------------------------------------------------------------------

import argparse  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL_DIR = ROOT / "model_artifacts" / "churn"
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"}
# "Today" for issue 24's goal on `import handler.app`: the last commit before its cold-start work.
BASELINE = "35eeffaee7021b6c3c768a667d427796f98f766b"

# The function runs numpy with one OpenBLAS thread (handler/app.py sets it before numpy is imported): the floors
# are measured as issue 24 defines them (a plain process) and also with that one setting, which they gain from too.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1"}
# (label, probe, runtime or None, code: "current" or "baseline", more environment)
PROBES: tuple[tuple[str, str, str | None, str, dict[str, str]], ...] = (
    ("LiteRT floor: numpy + ai_edge_litert + model.tflite + signature runner", "floor_litert", None, "current", {}),
    ("LiteRT floor, one BLAS thread (OPENBLAS_NUM_THREADS=1)", "floor_litert", None, "current", ONE_BLAS_THREAD),
    ("skewless LiteRT: first answered prediction", "first_answer", "litert", "current", {}),
    ("import handler.app (Lambda init), LiteRT", "import_handler", "litert", "current", {}),
    (f"import handler.app at {BASELINE[:7]} (before issue 24), LiteRT", "import_handler", "litert", "baseline", {}),
    ("import tensorflow", "import_tensorflow", None, "current", {}),
    ("TensorFlow floor: import TensorFlow + load model.keras", "floor_tensorflow", None, "current", {}),
    ("TensorFlow floor, one BLAS thread", "floor_tensorflow", None, "current", ONE_BLAS_THREAD),
    ("skewless TensorFlow: first answered prediction", "first_answer", "tensorflow", "current", {}),
    ("usual way: load at import + model.predict", "usual_way", None, "current", {}),
)
LITERT_FLOOR, LITERT_FLOOR_1, LITERT_FIRST, IMPORT_NOW, IMPORT_BEFORE = (p[0] for p in PROBES[:5])
TF_FLOOR, TF_FLOOR_1, TF_FIRST = (p[0] for p in PROBES[6:9])
GOALS = (  # (goal, numerator, denominator, figure, at most)
    ("LiteRT first answer ≤ 1.5× its floor", LITERT_FIRST, LITERT_FLOOR, "seconds", 1.5),
    ("— the same, against the floor with one BLAS thread", LITERT_FIRST, LITERT_FLOOR_1, "seconds", 1.5),
    ("TensorFlow first answer ≤ 1.1× its floor", TF_FIRST, TF_FLOOR, "seconds", 1.1),
    ("— the same, against the floor with one BLAS thread", TF_FIRST, TF_FLOOR_1, "seconds", 1.1),
    (f"`import handler.app` ≤ 0.4× its time at {BASELINE[:7]}", IMPORT_NOW, IMPORT_BEFORE, "import", 0.4),
)


def compile_tree(code_root: Path) -> None:
    """Bytecode for handler/ under `code_root`, as the image build writes it (its __pycache__ is git-ignored)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(code_root / "handler")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def baseline_tree(folder: Path) -> Path | None:
    """handler/ as it was at BASELINE, extracted into `folder` (None when this clone lacks that commit)."""
    try:
        archive = subprocess.run(["git", "archive", BASELINE, "handler"], cwd=ROOT, capture_output=True)
    except OSError:  # no git
        return None
    if archive.returncode != 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run_probe(name: str, env: dict[str, str], code_root: Path, timeout: float = 600) -> dict[str, float]:
    """One fresh process, timed from its spawn to its answer."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        full_env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SERVING_RUNTIME", *ONE_BLAS_THREAD)},
            **QUIET,
            "MODEL_DIR": str(MODEL_DIR),
            "PYTHONPATH": str(code_root),
            **env,
        }
        full_env["BENCH_SPAWNED"] = repr(time.monotonic())
        done = subprocess.run(
            [sys.executable, "-P", str(HERE / "cold.py"), name, out.name],
            cwd=code_root,
            env=full_env,
            stdout=subprocess.DEVNULL,  # EMF lines, as Lambda's go to its log sink
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cold probe {name} failed:\n{done.stderr[-3000:]}")
        result: dict[str, float] = json.loads(Path(out.name).read_text())
        return result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _quartiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 4], ordered[(3 * (len(ordered) - 1) + 3) // 4]


def measure(repeats: int, with_baseline: bool = True) -> dict[str, Any]:
    """Every probe `repeats` times in alternation; medians, quartiles, the goals' ratios, the import breakdown."""
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        event_file = Path(tmp) / "event.json"
        event_file.write_text(json.dumps(http_event()))
        compile_tree(ROOT)
        roots = {"current": ROOT}
        old = baseline_tree(Path(tmp) / "baseline") if with_baseline else None
        if old is not None:
            compile_tree(old)
            roots["baseline"] = old
        probes = [p for p in PROBES if p[3] in roots]
        samples: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label, *_ in probes}
        for _ in range(repeats):
            for label, name, runtime, code, more in probes:
                env = {"BENCH_EVENT": str(event_file), **({"SERVING_RUNTIME": runtime} if runtime else {}), **more}
                for key, value in run_probe(name, env, roots[code]).items():
                    samples[label][key].append(value)
        breakdown = import_breakdown(roots["current"], runs=3)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for label, per in samples.items():
        figures[label] = {}
        for key, values in per.items():
            p25, p75 = _quartiles(values)
            figures[label][key] = {"median": _median(values), "p25": p25, "p75": p75, "n": len(values)}
    goals = []
    for goal, num, den, key, limit in GOALS:
        if num in figures and den in figures:
            a, b = figures[num][key]["median"], figures[den][key]["median"]
            goal_row = {"goal": goal, "ratio": a / b, "limit": limit, "met": a / b <= limit, "of": a, "to": b}
            if key == "seconds":  # the same ratio in CPU time, which a loaded machine's waiting leaves out
                goal_row["cpu_ratio"] = figures[num]["cpu"]["median"] / figures[den]["cpu"]["median"]
            goals.append(goal_row)
    return {
        "figures": figures,
        "goals": goals,
        "import_breakdown": breakdown,
        "load_before": load_before,
        "load": _load(),
    }


def http_event() -> dict[str, Any]:
    """An HTTP API (v2) event predicting one churn example, as a client sends it."""
    golden = json.loads((MODEL_DIR / "golden.json").read_text())
    instance = next(c for c in golden["cases"] if c["name"] == "batch_of_100")["request"]["instances"][0]
    event: dict[str, Any] = json.loads((ROOT / "events" / "http_api.json").read_text())
    event["body"] = json.dumps({"instances": [instance]})
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


# --- where `import handler.app` spends its time ---------------------------------------------------------

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _owner(module: str) -> str:
    """Whom an imported module's time is charged to: a room of ours, a distribution, or the standard library."""
    top = module.split(".")[0]
    if top == "handler":
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else module
    if top in sys.stdlib_module_names or top.startswith("_") and top.lstrip("_") in sys.stdlib_module_names:
        return "standard library"
    return top


def import_breakdown(code_root: Path, runs: int = 3, runtime: str = "litert") -> dict[str, Any]:
    """What the first answer imports, and when: the first_answer probe under `-X importtime`, `runs` times.

    Each module's median self time is charged to its owner (a room of ours, a distribution, the standard library)
    and to the phase it was imported in: the init (`import handler.app`) or the first request. The heaviest imports
    are given with everything they imported (cumulative): what each phase imported itself, and our modules. Python's
    own start (site, encodings) is in neither.
    """
    selfs: dict[tuple[str, str], list[float]] = defaultdict(list)
    cumulative: dict[str, list[float]] = defaultdict(list)  # the phases' own imports (depth 0), and ours
    with tempfile.TemporaryDirectory() as tmp:
        event_file, out = Path(tmp) / "event.json", Path(tmp) / "out.json"
        event_file.write_text(json.dumps(http_event()))
        for _ in range(runs):
            env = {
                **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                **QUIET,
                "MODEL_DIR": str(MODEL_DIR),
                "PYTHONPATH": str(code_root),
                "SERVING_RUNTIME": runtime,
                "BENCH_EVENT": str(event_file),
                "BENCH_MARK": "1",
                "BENCH_SPAWNED": repr(time.monotonic()),
            }
            done = subprocess.run(
                [sys.executable, "-P", "-X", "importtime", str(HERE / "cold.py"), "first_answer", str(out)],
                cwd=code_root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the first answer failed:\n{done.stderr[-3000:]}")
            phase = None
            for line in done.stderr.splitlines():
                if line.startswith("BENCH_MARK "):
                    phase = line[len("BENCH_MARK ") :]
                    continue
                m = _IMPORTTIME.match(line)
                if m and phase is not None:
                    selfs[(phase, m[4])].append(int(m[1]) / 1e6)
                    if not m[3] or m[4].startswith("handler."):
                        cumulative[m[4]].append(int(m[2]) / 1e6)
    owners: dict[str, dict[str, float]] = defaultdict(lambda: {"init": 0.0, "first request": 0.0})
    for (phase, module), values in selfs.items():
        owners[_owner(module)][phase] += _median(values)
    totals = {p: sum(o[p] for o in owners.values()) for p in ("init", "first request")}
    heavy = {m: _median(v) for m, v in cumulative.items()}
    return {
        "runtime": runtime,
        "totals": totals,
        "by_owner": dict(sorted(owners.items(), key=lambda kv: -(kv[1]["init"] + kv[1]["first request"]))),
        "heaviest": dict(sorted(heavy.items(), key=lambda kv: -kv[1])[:15]),
    }


def _load() -> str:
    """The machine's load averages (1, 5, 15 min), as uptime prints them."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


# --- the report -----------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    """The cold-start section of RESULTS.md, also printed by `make bench`."""
    f = results["figures"]
    lines = [
        f"Load average before and after: {results.get('load_before', '?')} / {results['load']} (1, 5, 15 min).",
        "",
        "| what | median s | p25–p75 | runs | of which `import handler.app` | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, per in f.items():
        s = per["seconds"]
        imp, cpu = per.get("import"), per.get("cpu")
        imported = f"{imp['median']:.3f}" if imp else ""
        cpu_s = f"{cpu['median']:.3f}" if cpu else ""
        lines.append(
            f"| {label} | {s['median']:.3f} | {s['p25']:.3f}–{s['p75']:.3f} | {s['n']} | {imported} | {cpu_s} |"
        )
    lines += [
        "",
        "| goal (issue 24) | measured | of / to (s) | met | the same in CPU time |",
        "|---|---:|---:|---|---:|",
    ]
    for g in results["goals"]:
        met = "yes" if g["met"] else "**no**"
        cpu_ratio = f"{g['cpu_ratio']:.2f}×" if "cpu_ratio" in g else ""
        lines.append(f"| {g['goal']} | {g['ratio']:.2f}× | {g['of']:.3f} / {g['to']:.3f} | {met} | {cpu_ratio} |")
    b = results["import_breakdown"]
    t = b["totals"]
    lines += [
        "",
        f"What the first answer imports ({b['runtime']}; `python -X importtime`, which slows every import a little; "
        f"median of 3 runs): {t['init'] * 1e3:.0f} ms of imports in the init, {t['first request'] * 1e3:.0f} ms in "
        "the first request. Self time by owner, biggest first; then the heaviest imports (those each phase made "
        "itself, and ours), each with what it imported.",
        "",
        "| owner | init ms | first request ms |",
        "|---|---:|---:|",
        *(
            f"| {owner} | {ms['init'] * 1e3:.1f} | {ms['first request'] * 1e3:.1f} |"
            for owner, ms in b["by_owner"].items()
            if ms["init"] + ms["first request"] >= 0.0005
        ),
        "",
        "| module (cumulative) | ms |",
        "|---|---:|",
        *(f"| {m} | {s * 1e3:.1f} |" for m, s in b["heaviest"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per figure")
    parser.add_argument("--no-baseline", action="store_true", help=f"leave out the import at {BASELINE[:7]}")
    args = parser.parse_args(argv)
    print(table(measure(args.repeats, with_baseline=not args.no_baseline)))


if __name__ == "__main__":
    main()

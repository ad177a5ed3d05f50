"""Cold starts in the function's images, capped as Lambda caps a 1,024 MB function: `python -m benchmarks.image_cold`
(or `make bench-images`, which puts the figures into RESULTS.md).

Both images (RUNTIME=litert and RUNTIME=tensorflow) are built from the Dockerfile on the local Debian base image
that the container tests make (nothing is pulled), then run as Lambda would run them at 1,024 MB: `--cpus 0.58`
(Lambda gives a full vCPU at 1,769 MB), `--memory 1g`, and a read-only root (`--read-only`, /tmp a tmpfs). In
each image, with those limits:

- under the runtime interface emulator (the SAM CLI's, mounted as `sam local` mounts it), a fresh container per
  run and one HTTP API event: the init and the invocation as the emulator reports them (INIT REPORT, REPORT),
  and what the client waited;
- benchmarks/cold.py's probes, each a fresh process timed from its spawn: the floors (LiteRT: numpy +
  ai_edge_litert + load + signature runner; TensorFlow: import + load the model), the first answer through
  lambda_handler, and the init alone;
- which of our modules the init read from bytecode (`python -v`): all of them, since the Dockerfile compiles
  handler/.

It uses the container tests' engine (tests/support/docker_engine.py): one that is running, else one it starts
and stops. About 4 minutes with both images built before (make test-sam builds them too); the first build of the
TensorFlow image on an empty engine takes several more.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections import defaultdict
from io import BytesIO
from pathlib import Path
from typing import Any

from benchmarks.cold import (
    BASELINE,
    HERE,
    ONE_BLAS_THREAD,
    ROOT,
    _load,
    _median,
    _quartiles,
    baseline_tree,
    http_event,
)

CPUS = "0.58"  # Lambda's share of a vCPU at 1,024 MB (1,769 MB is one vCPU)
MEMORY = "1g"
LIMITS = ("--cpus", CPUS, "--memory", MEMORY, "--read-only", "--tmpfs", "/tmp")
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"}
INVOKE = "/2015-03-31/functions/function/invocations"

# What each image is measured with: (label, cold.py probe, SERVING_RUNTIME or None, more environment).
PROBES: dict[str, tuple[tuple[str, str, str | None, dict[str, str]], ...]] = {
    "litert": (
        ("LiteRT floor", "floor_litert", None, {}),
        ("LiteRT floor, one BLAS thread", "floor_litert", None, ONE_BLAS_THREAD),
        ("first answer, LiteRT (lambda_handler)", "first_answer", None, {}),
        ("init alone (import handler.app)", "import_handler", None, {}),
    ),
    "tensorflow": (
        ("LiteRT floor", "floor_litert", None, {}),
        ("LiteRT floor, one BLAS thread", "floor_litert", None, ONE_BLAS_THREAD),
        ("first answer, LiteRT (auto)", "first_answer", None, {}),
        ("TensorFlow floor", "floor_tensorflow", None, {}),
        ("first answer, TensorFlow", "first_answer", "tensorflow", {}),
        ("init alone (import handler.app)", "import_handler", None, {}),
    ),
}
# Runs under the emulator: (label, SERVING_RUNTIME or None), per image.
EMULATED = {"litert": (("LiteRT (auto)", None),), "tensorflow": (("LiteRT (auto)", None), ("TensorFlow", "tensorflow"))}

# Inside the container: each probe a fresh process timed from its spawn (benchmarks/cold.py's child), in turn.
LAUNCHER = r"""
import json, os, subprocess, sys, time
plan = json.loads(sys.argv[1])
out = {}
for _ in range(plan["repeats"]):
    for label, name, runtime, more in plan["probes"]:
        env = {**os.environ, "BENCH_EVENT": "/bench/event.json", "PYTHONPATH": "/var/task", **more}
        if runtime:
            env["SERVING_RUNTIME"] = runtime
        env["BENCH_SPAWNED"] = repr(time.monotonic())
        subprocess.run([sys.executable, "-P", "/bench/cold.py", name, "/tmp/out.json"], env=env, check=True,
                       cwd="/var/task", stdout=subprocess.DEVNULL)
        with open("/tmp/out.json") as fh:
            for key, value in json.load(fh).items():
                out.setdefault(label, {}).setdefault(key, []).append(value)
print(json.dumps(out))
"""


def _engine() -> tuple[Any, bool]:
    """The container tests' engine: the one running (never stopped here), else one started for this run."""
    from tests.support.docker_engine import WORK_ROOT, DockerEngine, engine_pids_under, start_engine

    socket = WORK_ROOT / "docker.sock"
    if engine_pids_under(WORK_ROOT) and socket.exists():  # another run's engine: use it, leave it running
        host = f"unix://{socket}"
        return DockerEngine(client="docker", host=host, env={**os.environ, "DOCKER_HOST": host}), False
    return start_engine(), True


def _base_image(engine: Any) -> str:
    from tests.env.sam.conftest import BASE_IMAGE

    if not engine.has_image(BASE_IMAGE):
        raise SystemExit(
            f"the engine has no {BASE_IMAGE}: run the container tests once (make test-sam), which build it "
            "with debootstrap (nothing can be pulled here)"
        )
    return str(BASE_IMAGE)


def _baseline_context(folder: Path) -> Path | None:
    """The tree at BASELINE, to build its image; None without the commit.

    Built with today's Dockerfile less its compileall step (issue 24's): BASELINE's own Dockerfile set an ENV
    MODEL_DIR that hid the build argument from its COPY, which this engine's builder does not build, and what
    else changed in it (where the model is staged) does not touch a cold start.
    """
    if baseline_tree(folder) is None:  # handler/ alone: whether this clone has the commit
        return None
    archive = subprocess.run(["git", "archive", BASELINE], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    lines = (ROOT / "Dockerfile").read_text().splitlines(keepends=True)
    step = next(i for i, line in enumerate(lines) if "compileall" in line)
    start = step
    while start > 0 and lines[start - 1].startswith("#"):  # its comment too
        start -= 1
    (folder / "Dockerfile").write_text("".join(lines[:start] + lines[step + 1 :]))
    return folder


def build(engine: Any, base: str, runtime: str, tag: str, context: Path) -> float:
    """`docker build` of one image (layers cached by earlier builds are reused); seconds it took."""
    from tests.env.sam.conftest import _trust_host_ca_certificates

    _trust_host_ca_certificates()  # the build's pip goes through this machine's TLS-re-signing proxy
    if context != ROOT:  # the same extra CA certificates for the tree of another commit
        shutil.copytree(ROOT / "build-inputs", context / "build-inputs", dirs_exist_ok=True)
    t = time.monotonic()
    done = engine.run(
        "build", "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"RUNTIME={runtime}", "-t", tag, str(context),
        check=False, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"docker build of {tag} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - t


def probes(engine: Any, runtime: str, tag: str, event_file: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    """benchmarks/cold.py's probes in one capped container of the image, each a fresh process, in turn."""
    plan = {"repeats": repeats, "probes": [list(p) for p in PROBES[runtime]]}
    done = engine.run(
        "run", "--rm", *LIMITS, "--network", "none",
        "-v", f"{HERE / 'cold.py'}:/bench/cold.py:ro", "-v", f"{event_file}:/bench/event.json:ro",
        *(f"-e{k}={v}" for k, v in QUIET.items()),
        "--entrypoint", "python", tag, "-c", LAUNCHER, json.dumps(plan),
        check=False, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the probes failed in {tag}:\n{done.stderr[-3000:]}")
    result: dict[str, dict[str, list[float]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bytecode(engine: Any, tag: str) -> dict[str, int]:
    """Of our modules the init imports, how many came from the image's bytecode (`python -v`, read-only root)."""
    done = engine.run(
        "run", "--rm", *LIMITS, "--network", "none", *(f"-e{k}={v}" for k, v in QUIET.items()),
        "--entrypoint", "python", tag, "-v", "-c", "import handler.app",
        check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"import handler.app failed in {tag}:\n{done.stderr[-3000:]}")
    sources = re.findall(r"^# code object from '?(/var/task/handler/\S+?)'?$", done.stderr, flags=re.MULTILINE)
    return {"modules": len(sources), "from_bytecode": sum(s.endswith(".pyc") for s in sources)}


def emulated(engine: Any, tag: str, label: str, serving: str | None, event: bytes) -> dict[str, float]:
    """One cold invocation under the emulator, in a fresh capped container: INIT, REPORT, the client's wait."""
    from tests.support.samcli import rie_binary

    env = {**QUIET, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "POWERTOOLS_METRICS_NAMESPACE": "bench"}
    if serving:
        env["SERVING_RUNTIME"] = serving
    started = engine.run(
        "run", "-d", *LIMITS, "-v", f"{rie_binary()}:/usr/local/bin/aws-lambda-rie:ro",
        *(f"-e{k}={v}" for k, v in env.items()), tag,
        check=False,
    )  # fmt: skip
    if started.returncode != 0:
        raise RuntimeError(f"the emulator did not start in {tag}:\n{started.stderr[-3000:]}")
    container = started.stdout.strip()
    try:
        address = engine.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", container).stdout.strip()
        _wait_for_port(address, 8080)
        t = time.monotonic()
        request = urllib.request.Request(f"http://{address}:8080{INVOKE}", data=event)
        with urllib.request.urlopen(request, timeout=300) as answer:
            body = json.loads(answer.read())
        waited = time.monotonic() - t
        if body.get("statusCode") != 200:
            raise RuntimeError(f"{tag}, {label}: the first answer is not a 200: {str(body)[:500]}")
        time.sleep(0.3)  # the REPORT line follows the answer
        logs = engine.run("logs", container, check=False)
        log = logs.stdout + logs.stderr
    finally:
        engine.run("rm", "-f", container, check=False)
    return {
        "client": waited,
        "init": _reported(log, r"INIT REPORT\(durationMs: ([0-9.]+)\)"),
        "invoke": _reported(log, r"REPORT RequestId: \S+\s+Init Duration: [0-9.]+ ms\s+Duration: ([0-9.]+) ms"),
    }


def _wait_for_port(address: str, port: int, seconds: float = 30) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _reported(log: str, pattern: str) -> float:
    found = re.findall(pattern, log)
    return float(found[-1]) / 1000 if found else float("nan")


def _figures(values: list[float]) -> dict[str, float]:
    p25, p75 = _quartiles(values)
    return {"median": _median(values), "p25": p25, "p75": p75, "n": len(values)}


def measure(repeats: int, with_baseline: bool = True) -> dict[str, Any]:
    """Build the images, measure each one's probes and bytecode, then cold invocations under the emulator, every
    image in turn each round. With the baseline, the LiteRT image of BASELINE (before issue 24) is measured too."""
    engine, ours = _engine()
    load_before = _load()
    out: dict[str, Any] = {"cpus": CPUS, "memory": MEMORY, "images": {}}
    try:
        base = _base_image(engine)
        event = http_event()
        with tempfile.TemporaryDirectory() as tmp:
            event_file = Path(tmp) / "event.json"
            event_file.write_text(json.dumps(event))
            event_file.chmod(0o644)
            # (name in the table, RUNTIME, build context, tag)
            images = [
                ("litert", "litert", ROOT, "skewless-bench:litert"),
                ("tensorflow", "tensorflow", ROOT, "skewless-bench:tensorflow"),
            ]
            before = _baseline_context(Path(tmp) / "baseline") if with_baseline else None
            if before is not None:
                images.append((f"litert at {BASELINE[:7]}", "litert", before, f"skewless-bench:litert-{BASELINE[:7]}"))
            for name, runtime, context, tag in images:
                image: dict[str, Any] = {
                    "runtime": runtime,
                    "build_seconds": build(engine, base, runtime, tag, context),
                }
                image["probes"] = {
                    label: {k: _figures(v) for k, v in per.items()}
                    for label, per in probes(engine, runtime, tag, event_file, repeats).items()
                }
                image["bytecode"] = bytecode(engine, tag)
                out["images"][name] = image
            runs: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            for _ in range(repeats):
                for name, runtime, _context, tag in images:
                    for label, serving in EMULATED[runtime]:
                        for key, value in emulated(engine, tag, label, serving, json.dumps(event).encode()).items():
                            runs[(name, label)][key].append(value)
            for (name, label), per in runs.items():
                emulator = out["images"][name].setdefault("emulator", {})
                emulator[label] = {k: _figures(v) for k, v in per.items()}
    finally:
        if ours:
            engine.stop()
    out["load_before"], out["load"] = load_before, _load()
    return out


def table(results: dict[str, Any]) -> str:
    """The images' cold starts, as RESULTS.md shows them."""
    lines = [
        f"Limits: `--cpus {results['cpus']} --memory {results['memory']} --read-only` (Lambda at 1,024 MB). Load "
        f"average before and after: {results.get('load_before', '?')} / {results['load']} (1, 5, 15 min).",
        "",
        "| image | what | median s | p25–p75 | runs | / its floor | / LiteRT's floor, one BLAS thread |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, image in results["images"].items():
        floors = {k: image["probes"][f"{k} floor"]["seconds"]["median"] for k in ("LiteRT", "TensorFlow")
                  if f"{k} floor" in image["probes"]}  # fmt: skip
        one_thread = image["probes"].get("LiteRT floor, one BLAS thread", {}).get("seconds", {}).get("median")
        for label, per in image["probes"].items():
            s = per["seconds"]
            shown = _ratios(label, s["median"], floors, one_thread) if "first answer" in label else " | "
            lines.append(
                f"| {name} | {label} | {s['median']:.3f} | {s['p25']:.3f}–{s['p75']:.3f} | {s['n']} | {shown} |"
            )
        for label, per in image.get("emulator", {}).items():
            for key, what in (("client", "client waited"), ("init", "INIT REPORT"), ("invoke", "REPORT Duration")):
                s = per[key]
                shown = _ratios(label, s["median"], floors, one_thread) if key == "client" else " | "
                lines.append(
                    f"| {name} | emulator, {label}: {what} | {s['median']:.3f} | {s['p25']:.3f}–{s['p75']:.3f} "
                    f"| {s['n']} | {shown} |"
                )
    bytecode = "; ".join(
        f"{name}: {i['bytecode']['from_bytecode']} of the {i['bytecode']['modules']} modules of ours the init imports "
        f"(build {i['build_seconds']:.0f} s)"
        for name, i in results["images"].items()
    )
    lines += [
        "",
        "The emulator starts the runtime when the first invocation arrives: the client waits for Python, the init "
        "and the first answer (the container was created before), and REPORT's Duration includes the init. Read "
        f"from bytecode, with a read-only root: {bytecode}.",
    ]
    return "\n".join(lines)


def _ratios(label: str, seconds: float, floors: dict[str, float], one_thread: float | None) -> str:
    """A first answer over its floor, and a LiteRT one over LiteRT's floor with one BLAS thread: two cells."""
    lite = "TensorFlow" not in label
    plain = f"{seconds / floors['LiteRT' if lite else 'TensorFlow']:.2f}×"
    return f"{plain} | {seconds / one_thread:.2f}×" if lite and one_thread else f"{plain} | "


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes (and containers) per figure")
    parser.add_argument("--no-baseline", action="store_true", help=f"leave out the LiteRT image at {BASELINE[:7]}")
    args = parser.parse_args(argv)
    print(table(measure(args.repeats, with_baseline=not args.no_baseline)))


if __name__ == "__main__":
    main()

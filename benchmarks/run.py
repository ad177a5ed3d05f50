"""The benchmark suite: `make bench` (or `python -m benchmarks.run`).

Every figure is a median over repeated runs with its spread, and every comparison is
measured side by side in the same run, on this machine. Writes benchmarks/RESULTS.md,
benchmarks/results.json and benchmarks/latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.local_s3 import local_s3

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"}
RUNTIMES = {"tensorflow": {"SERVING_RUNTIME": "tensorflow"}, "litert": {"SERVING_RUNTIME": "litert"}}


def probe(name: str, env: dict[str, str] | None = None, timeout: float = 900) -> Any:
    """Run one probe in a fresh Python process and return what it measured."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        full_env = {**os.environ, **QUIET, **(env or {})}
        # The probe's stdout (an EMF line per request) goes to a file nobody reads, as Lambda's go to its log
        # sink: into a pipe read by this process they cost 40-120 us more per request at one example here,
        # the reader's wake-ups competing for the 2 cores, not the handler's work. The result comes in OUT.json.
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.probes", name, out.name],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0:
            raise RuntimeError(f"probe {name} failed:\n{run.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


def summary(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median, p99 and the interquartile spread of a sample, times `scale`."""
    arr = np.asarray(values) * scale
    return {
        "median": float(np.median(arr)),
        "p99": float(np.percentile(arr, 99)),
        "p25": float(np.percentile(arr, 25)),
        "p75": float(np.percentile(arr, 75)),
        "n": len(values),
    }


# --- cold start (benchmarks/cold.py: fresh processes timed from their spawn; issue 24's ratios) ------------


def cold(repeats: int) -> dict[str, Any]:
    """The floors, the first answers and the init, side by side; the import-time breakdown. Printed as it ends."""
    from benchmarks import cold as cold_starts

    results = cold_starts.measure(repeats)
    print(cold_starts.table(results), flush=True)
    return results


# --- cold start under the Lambda runtime interface emulator --------------------------------


def _report(log: str, pattern: str) -> float:
    import re

    found = re.findall(pattern, log)
    return float(found[-1]) / 1000 if found else float("nan")


def emulator(repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    """Cold invocations under aws-lambda-rie + awslambdaric: what the emulator reports, and what a client waits."""
    from benchmarks.probes import http_event
    from tests.support.runtime_emulator import RuntimeEmulator
    from tests.support.samcli import rie_binary

    rie = rie_binary()
    out: dict[str, dict[str, dict[str, float]]] = {}
    samples: dict[str, dict[str, list[float]]] = {r: {"init": [], "invoke": [], "client": []} for r in RUNTIMES}
    event = http_event(1)
    for _ in range(repeats):
        for runtime, env in RUNTIMES.items():
            with tempfile.TemporaryDirectory() as tmp:
                log_path = Path(tmp) / "rie.log"
                with RuntimeEmulator(rie, log_path, env={**QUIET, **env}) as emu:
                    answer = emu.invoke(event)
                    assert answer.status == 200 and answer.body["statusCode"] == 200, answer
                    time.sleep(0.2)  # the REPORT line follows the answer
                log = log_path.read_text(errors="replace")
            samples[runtime]["init"].append(_report(log, r"INIT REPORT\(durationMs: ([0-9.]+)\)"))
            samples[runtime]["invoke"].append(
                _report(log, r"REPORT RequestId: \S+\s+Init Duration: [0-9.]+ ms\s+Duration: ([0-9.]+) ms")
            )
            samples[runtime]["client"].append(answer.seconds)
    for runtime, figures in samples.items():
        out[runtime] = {k: summary(v) for k, v in figures.items()}
    return out


# --- warm latency --------------------------------------------------------------------------

WARM = [
    ("skewless TensorFlow", "warm_handler", RUNTIMES["tensorflow"]),
    ("skewless LiteRT", "warm_handler", RUNTIMES["litert"]),
    ("usual way (model.predict)", "warm_usual_way", {}),
    ("floor: numpy forward pass", "warm_numpy_floor", {}),
]


def warm() -> dict[str, dict[str, dict[str, float]]]:
    return {label: {n: summary(v, 1000.0) for n, v in probe(name, env).items()} for label, name, env in WARM}


# --- the warm path's targets (issues 10 and 11) ----------------------------------------------


def targets() -> dict[str, Any]:
    """Where one example's time goes, batches against json.loads (both runtimes), the local server under wrk."""
    from benchmarks.local_load import local_server

    return {
        "breakdown": {runtime: probe("warm_breakdown", env) for runtime, env in RUNTIMES.items()},
        "ratios": {runtime: probe("warm_ratios", env) for runtime, env in RUNTIMES.items()},
        "local_server": local_server(),
    }


def _median(values: list[float]) -> float:
    return float(np.median(values))


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(target, measured, next to, met) for every speed target this run measured."""
    rows: list[tuple[str, str, str, bool]] = []
    warm = results.get("warm", {})
    t = results.get("targets", {})
    for runtime, label in (("litert", "LiteRT"), ("tensorflow", "TensorFlow")):
        r = t.get("ratios", {}).get(runtime)
        if r:
            d = r["digits_32"]
            rows.append(
                (
                    f"#10: 32 digits images, HTTP API v2, {label}: (handler − forward) p50 ≤ 3× json.loads",
                    f"{d['overhead_over_json_loads']:.2f}×",
                    f"handler {d['handler_ms']:.2f} ms, forward {d['forward_ms']:.2f} ms, "
                    f"json.loads {d['json_loads_ms']:.2f} ms",
                    d["overhead_over_json_loads"] <= 3,
                )
            )
    tf = warm.get("skewless TensorFlow", {}).get("1")
    if tf:
        rows.append(
            ("#10: warm p50, 1 churn example, HTTP API v2, TensorFlow ≤ 1 ms", f"{tf['median']:.3f} ms", "",
             tf["median"] <= 1.0)
        )  # fmt: skip
    lt = warm.get("skewless LiteRT", {}).get("1")
    b = t.get("breakdown", {}).get("litert")
    if lt:
        core = f"the core {b['us']['core_predict_v1'] / 1e3:.3f} ms (breakdown below)" if b else ""
        rows.append(("#11: warm p50, 1 churn example, HTTP API v2, LiteRT ≤ 0.15 ms", f"{lt['median']:.3f} ms", core,
                     lt["median"] <= 0.15))  # fmt: skip
    for runtime, label in (("litert", "LiteRT"), ("tensorflow", "TensorFlow")):
        r = t.get("ratios", {}).get(runtime)
        if r:
            c = r["churn_1024"]
            rows.append(
                (
                    f"#11: 1,024 churn rows, HTTP API v2, {label}: handler p50 ≤ 3× json.loads",
                    f"{c['handler_over_json_loads']:.2f}×",
                    f"handler {c['handler_ms']:.2f} ms (forward {c['forward_ms']:.2f}), "
                    f"json.loads {c['json_loads_ms']:.2f} ms",
                    c["handler_over_json_loads"] <= 3,
                )
            )
    server = t.get("local_server")
    if server:
        live = _median([r["latency_ms"]["p50"] for r in server["live_keepalive"]])
        rps = _median([r["requests_per_second"] for r in server["predict_8_clients"]])
        errors = sum(r["socket_errors"] + r["non_2xx"] for r in server["predict_8_clients"] + server["live_keepalive"])
        rows.append(
            ("#11: local server, keep-alive GET /v2/health/live p50 ≤ 2 ms", f"{live:.3f} ms", "wrk, 1 connection",
             live <= 2.0)
        )  # fmt: skip
        rows.append(
            (
                "#11: local server, predict with 8 concurrent clients ≥ 500 req/s, 0 errors",
                f"{rps:,.0f} req/s, {errors} errors",
                f"wrk, 8 connections, 1 churn example each, {server['runtime']}",
                rps >= 500 and errors == 0,
            )
        )
    return rows


# --- S3 throughput -------------------------------------------------------------------------


def _csv_block(rows: int) -> bytes:
    """`rows` lines of reference-model CSV (no header), from the training data generator."""
    from training.churn_data import COLUMNS, generate

    cols, _ = generate(rows, seed=11)
    text = [cols[c].astype(str) for c in COLUMNS]
    return ("\n".join(",".join(r) for r in zip(*text, strict=True)) + "\n").encode()


def s3_throughput(sizes: list[int]) -> dict[str, dict[str, float]]:
    import boto3

    from training.churn_data import COLUMNS

    block_rows = 100_000
    block = _csv_block(block_rows)
    out: dict[str, dict[str, float]] = {}
    with local_s3() as env:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket="bench")
        for n in sizes:
            assert n % block_rows == 0
            with tempfile.TemporaryFile() as fh:
                fh.write((",".join(COLUMNS) + "\n").encode())
                for _ in range(n // block_rows):
                    fh.write(block)
                size_mb = fh.tell() / 1e6
                fh.seek(0)
                key = f"incoming/bench-{n}.csv"
                s3.upload_fileobj(fh, "bench", key)
            result = probe("s3_csv", {**env, "BENCH_BUCKET": "bench", "BENCH_KEY": key, "OUTPUT_BUCKET": "bench"})
            assert result["predicted"] == n, result
            out[str(n)] = {**result, "rows_per_second": n / result["seconds"], "file_mb": size_mb}
    return out


# --- images --------------------------------------------------------------------------------


def image_sizes() -> dict[str, str]:
    """Sizes of the images the sam tests built, when their container engine's data is on this machine."""
    from tests.support.docker_engine import WORK_ROOT, start_engine

    if not (WORK_ROOT / "data").is_dir() or not shutil.which("dockerd"):
        return {}
    engine = start_engine()
    try:
        listing = engine.run("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", check=False)
    finally:
        engine.stop()
    sizes = {}
    for line in listing.stdout.splitlines():
        name, _, size = line.partition(" ")
        if name.startswith(("skewless-test", "inferencefunction:latest")):
            sizes[name] = size
    return sizes


# --- report --------------------------------------------------------------------------------


def _ms(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} (p99 {s['p99']:.3f})"


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Made by `make bench` on {results['when']} ({results['machine']}). Medians over repeated runs; "
        "spread is the interquartile range. Every comparison was measured side by side in the same run.",
        "",
        *_kept_report(results),
        *_targets_report(results),
        *_cold_report(results),
        "## Warm latency through `lambda_handler` (HTTP API v2 event), milliseconds",
        "",
        "| runtime | 1 example p50 (p99) | 32 p50 (p99) | 1024 p50 (p99) |",
        "|---|---:|---:|---:|",
    ]
    for label, per in results["warm"].items():
        lines.append(f"| {label} | {_ms(per['1'])} | {_ms(per['32'])} | {_ms(per['1024'])} |")
    w = results["warm"]
    usual1 = w["usual way (model.predict)"]["1"]["median"]
    lines += [
        "",
        f"1 example: usual way / skewless TensorFlow = **{usual1 / w['skewless TensorFlow']['1']['median']:.0f}×**, "
        f"usual way / skewless LiteRT = **{usual1 / w['skewless LiteRT']['1']['median']:.0f}×**. "
        "The numpy floor is the bare forward pass on already-preprocessed input: no event, no JSON, no coercion.",
        "",
        "![warm latency](latency.png)",
        "",
        *_breakdown_report(results),
    ]
    if results.get("emulator"):
        lines += [
            "## Cold start under the Lambda runtime emulator (aws-lambda-rie + awslambdaric, seconds)",
            "",
            "| runtime | init (INIT REPORT) | first invocation, init included (REPORT Duration) | client waited |",
            "|---|---:|---:|---:|",
        ]
        for runtime, f in results["emulator"].items():
            lines.append(
                f"| {runtime} | {f['init']['median']:.3f} | {f['invoke']['median']:.3f} | {f['client']['median']:.3f} |"
            )
        lines += [
            "",
            "The emulator starts the runtime on the first invocation, so its duration includes the init and the lazy "
            "model load; the init is importing the handler.",
            "",
        ]
    if results.get("drift"):
        lines += [
            "## The drift watch (churn, DRIFT_WINDOW rows a window, with and without it in one process)",
            "",
            "| runtime | batch | handler p50 ms without / with | watch per call ms | share of p50 (budget) |",
            "|---|---:|---:|---:|---:|",
        ]
        for runtime, d in results["drift"].items():
            for n, budget in (("1", "5%"), ("1024", "10%")):
                r = d[n]
                lines.append(
                    f"| {runtime} (window {d['window']}) | {n} | {r['handler_p50_ms_without_watch']:.3f} / "
                    f"{r['handler_p50_ms_with_watch']:.3f} | {r['watch_ms_per_call']:.4f} | "
                    f"{r['watch_share_of_p50']:.1%} ({budget}) |"
                )
        lines.append("")
    if results.get("s3"):
        lines += [
            "## S3-triggered inference (CSV through the S3 handler, local S3 server in its own process)",
            "",
            "| rows | file MB | seconds | rows/s | peak RSS MB | RSS before the file MB |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for n, r in results["s3"].items():
            lines.append(
                f"| {int(n):,} | {r['file_mb']:.0f} | {r['seconds']:.2f} | {r['rows_per_second']:,.0f} | "
                f"{r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} |"
            )
        sizes = sorted(results["s3"], key=int)
        if len(sizes) >= 2:
            a, b = results["s3"][sizes[-2]], results["s3"][sizes[-1]]
            lines += [
                "",
                f"Peak memory {int(sizes[-1]):,} rows / {int(sizes[-2]):,} rows: "
                f"**{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}×**.",
                "",
            ]
    if results.get("bulk"):
        from benchmarks import bulk

        lines += ["## Bulk inference (benchmarks/bulk.py)", "", bulk.table(results["bulk"]), ""]
    if results.get("scale"):
        from benchmarks import scale

        lines += [scale.SECTION, "", scale.table(results["scale"]), ""]
    if results.get("image_cold"):
        from benchmarks import image_cold

        lines += ["## Cold start in the images, capped as Lambda at 1,024 MB (benchmarks/image_cold.py)", ""]
        lines += [image_cold.table(results["image_cold"]), ""]
    if results.get("images"):
        lines += ["## Images", "", "| image | size |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in results["images"].items()]
        lines.append("")
    return "\n".join(lines)


def _cold_report(results: dict[str, Any]) -> list[str]:
    from benchmarks import cold as cold_starts

    c = results.get("cold")
    if not c or "figures" not in c:  # not measured, or by the bench before issue 24 (another layout)
        return []
    return [
        "## Cold start (fresh processes timed from their spawn, seconds; benchmarks/cold.py)",
        "",
        cold_starts.table(c),
        "",
    ]


def _kept_report(results: dict[str, Any]) -> list[str]:
    """The sections this run skipped, kept as an earlier run measured them, with their dates."""
    kept = {k: when for k, when in results.get("measured", {}).items() if when != results["when"]}
    if not kept:
        return []
    return ["Kept from earlier runs (skipped in this one): " + ", ".join(f"{k} ({w})" for k, w in kept.items()), ""]


def _targets_report(results: dict[str, Any]) -> list[str]:
    rows = target_rows(results)
    if not rows:
        return []
    lines = [
        "## Targets (issues 10 and 11; medians, ratios within this run)",
        "",
        "| target | measured | next to | met |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {what} | {got} | {beside} | {'yes' if met else '**no**'} |" for what, got, beside, met in rows]
    return [*lines, ""]


BREAKDOWN = (
    ("lambda_handler", "`lambda_handler`, all of it"),
    ("decorators", "— Powertools' Logger and Metrics decorators (the EMF line printed), the trigger's dispatch"),
    ("http_api_handle", "— `HttpApi.handle`: body checks, the routing, the route"),
    ("resolver_floor", "—— the routing alone (`GET /v2/health/live`: the event read, the route found, the answer)"),
    ("parse_json_body", "—— the body's parsing (`parse_json_body`)"),
    ("core_predict_v1", "—— the core: `Service.predict_v1` (coerce, preprocess, forward, answer, drift watch)"),
    ("forward", "——— of which the forward pass"),
    ("route_rest", "—— the rest of the route (model check, two metrics, the answer's JSON)"),
    ("json_loads", "next to: `json.loads` of the same body"),
)


def _breakdown_report(results: dict[str, Any]) -> list[str]:
    t = results.get("targets", {})
    lines: list[str] = []
    if t.get("breakdown"):
        runtimes = list(t["breakdown"])
        lines += [
            "## Where one example's time goes (1 churn example, HTTP API v2 event, µs, p50)",
            "",
            "Each step timed in alternation with the others in one process; the lines marked — are parts of the "
            "line above them (medians do not add up exactly).",
            "",
            f"| step | {' | '.join(runtimes)} |",
            f"|---|{'---:|' * len(runtimes)}",
        ]
        for key, label in BREAKDOWN:
            cells = " | ".join(f"{t['breakdown'][r]['us'][key]:.1f}" for r in runtimes)
            lines.append(f"| {label} | {cells} |")
        lines.append("")
    if t.get("ratios"):
        lines += [
            "## Batches through an HTTP API v2 event, next to json.loads of the same body (ms, p50)",
            "",
            "| batch | runtime | body KB | handler | forward | json.loads | (handler − forward) / json.loads "
            "| handler / json.loads |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for runtime, r in t["ratios"].items():
            for label, name in (("digits_32", "32 digits images"), ("churn_1024", "1,024 churn rows")):
                c = r[label]
                lines.append(
                    f"| {name} | {runtime} | {c['body_bytes'] / 1e3:.0f} | {c['handler_ms']:.2f} | "
                    f"{c['forward_ms']:.2f} | {c['json_loads_ms']:.2f} | {c['overhead_over_json_loads']:.2f}× | "
                    f"{c['handler_over_json_loads']:.2f}× |"
                )
        lines.append("")
    server = t.get("local_server")
    if server:
        lines += [
            f"## The local server (`python -m handler serve`, {server['runtime']}) under {server['tool']}",
            "",
            "| load | run | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, label in (("live_keepalive", "GET /v2/health/live, 1 keep-alive connection"),
                            ("predict_8_clients", "POST predict (1 churn example), 8 connections")):  # fmt: skip
            for i, r in enumerate(server[name], 1):
                lines.append(
                    f"| {label} | {i} | {r['requests_per_second']:,.0f} | {r['latency_ms']['p50']:.3f} | "
                    f"{r['latency_ms']['p99']:.3f} | {r['socket_errors'] + r['non_2xx']} |"
                )
        lines.append("")
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["warm"])
    batches = ["1", "32", "1024"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        medians = [results["warm"][label][b]["median"] for b in batches]
        ax.bar([j + i * width for j in range(len(batches))], medians, width, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(batches))], [f"batch {b}" for b in batches])
    ax.set_yscale("log")
    ax.set_ylabel("p50 latency, ms (log scale)")
    ax.set_title("Warm latency through lambda_handler (HTTP API v2 event)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


SECTIONS = ("cold", "emulator", "warm", "targets", "drift", "s3", "bulk", "scale", "images", "image_cold")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per cold-start figure")
    parser.add_argument("--s3-rows", default="100000,1000000,2000000", help="CSV sizes, comma-separated")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated sections to skip: cold,emulator,warm,targets,drift,s3,bulk,scale,images",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run, the others kept from the last run; image_cold (the images' cold "
        "starts, Docker, benchmarks/image_cold.py: make bench-images) runs only when named here",
    )
    parser.add_argument("--bulk-rows", default="1000000,10000000", help="bulk object sizes (benchmarks/bulk.py)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    if only:
        skip |= set(SECTIONS) - only
    elif "image_cold" not in skip:
        skip.add("image_cold")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    if "cold" not in skip:
        print("cold starts ...", flush=True)
        results["cold"] = cold(args.repeats)
    if "emulator" not in skip:
        print("cold starts under the Lambda runtime emulator ...", flush=True)
        results["emulator"] = emulator(args.repeats)
    if "warm" not in skip:
        print("warm latency ...", flush=True)
        results["warm"] = warm()
    if "targets" not in skip:
        print("warm path targets: where one example's time goes, batches, the local server under wrk ...", flush=True)
        results["targets"] = targets()
    if "drift" not in skip:
        print("drift watch cost ...", flush=True)
        results["drift"] = {runtime: probe("warm_drift", env) for runtime, env in RUNTIMES.items()}
    if "s3" not in skip:
        print("S3 throughput ...", flush=True)
        results["s3"] = s3_throughput([int(n) for n in args.s3_rows.split(",")])
    if "bulk" not in skip:
        from benchmarks import bulk  # its own probes and objects; its table goes into RESULTS.md (report)

        print("bulk inference: CSV and Parquet, 1M and 10M rows ...", flush=True)
        results["bulk"] = bulk.run([int(n) for n in args.bulk_rows.split(",")], repeats=3)
    if "scale" not in skip:
        from benchmarks import scale  # simulated, from the bulk section's throughput (else RESULTS.md's)

        print("a billion rows, planned: simulating the Map, Lambda and S3 limits ...", flush=True)
        results["scale"] = scale.run(scale.measured(results["bulk"]) if "bulk" in results else None)
    if "images" not in skip:
        results["images"] = image_sizes()
    if "image_cold" not in skip:
        from benchmarks import image_cold

        print(f"cold starts in both images, --cpus {image_cold.CPUS} and a read-only root (Docker) ...", flush=True)
        results["image_cold"] = image_cold.measure(args.repeats)
        print(image_cold.table(results["image_cold"]), flush=True)
    ran = set(results)
    results = _with_earlier_sections(results, HERE / "results.json")
    if "scale" not in results and not {"scale", "bulk"} & set(filter(None, args.skip.split(","))):
        from benchmarks import scale  # not kept in results.json before: a simulation (under a second), so made now

        results["scale"] = scale.run(None)  # from RESULTS.md's bulk run, as `python -m benchmarks.scale` alone
        results["measured"]["scale"] = results["when"]
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if "warm" in ran:
        plot(results, HERE / "latency.png")
    if "cold" in results and "warm" in results:
        (HERE / "RESULTS.md").write_text(report(results) + "\n")
    print(f"wrote {HERE / 'results.json'}")


def _with_earlier_sections(results: dict[str, Any], path: Path) -> dict[str, Any]:
    """This run's sections, and those it skipped as the last run left them in `path` (each section's date kept in
    `measured`), so that one section can be measured again (`--skip` the others) and the report still whole."""
    measured = {k: results["when"] for k in results if k not in ("when", "machine", "measured")}
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        earlier = {}
    for section, figures in earlier.items():
        if section in ("when", "machine", "measured") or section in results:
            continue
        results[section] = figures
        measured[section] = earlier.get("measured", {}).get(section, earlier.get("when", "an earlier run"))
    results["measured"] = measured
    return results


if __name__ == "__main__":
    main()

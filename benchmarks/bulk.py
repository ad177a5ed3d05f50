"""Bulk inference speed: churn on LiteRT through the S3 path, from CSV and from Parquet, against a local S3.

`python -m benchmarks.bulk` (or `make bench`, through benchmarks/run.py) puts 1M- and 10M-row
objects in moto's S3 server (its own process), predicts each in a fresh process with
`process_object` as the function would, and measures in the same run what it is next to:
- the floor: the S3 GET alone, each reader alone (object -> coerced chunks), the preprocessing
  alone, the model alone, and each writer alone, over the same rows;
- peak memory (the probe's own VmHWM, S3 being in another process) for 1M and for 10M rows;
- pyarrow's own parse of the smallest CSV object's bytes (`pyarrow.csv.read_csv`, threads on, and its streaming
  reader on one thread), each in a fresh process after each of that object's runs: issue 24 asks the S3 path's
  end-to-end rate for at least half of `read_csv`'s, the ratio printed with the machine's load.

It writes benchmarks/bulk_results.json and prints its table (`make bench` puts the table into
benchmarks/RESULTS.md): rows/s, and from the measured seconds (and CPU seconds) GB-seconds and dollars per
million rows at 1,769 MB and 3,008 MB. Lambda gives 1 vCPU at 1,769 MB and about 1.7 at 3,008 MB; this
machine has 2 shared cores, so a function's time there is estimated as max(wall time, CPU time / vCPUs).
A billion rows are planned by benchmarks/scale.py, from these figures and AWS's limits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUCKET = "bench"
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"}
LITERT = {"SERVING_RUNTIME": "litert"}
BLOCK_ROWS = 100_000
# Lambda's x86 price per GB-second (first 6 billion GB-seconds a month, US East) and per request. The AWS
# pricing page renders its figures client-side; this is the figure transcriptions of it give (cloudchipr's
# 2024 guide; lambda_local_runner's cost notes of 2026-05-11), looked up on 2026-11-26.
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.20 / 1e6
PRICE_DATE = "2026-11-26"
MEMORY_MB = {1769: 1.0, 3008: 3008 / 1769}  # configured MB -> vCPUs (Lambda: 1 vCPU per 1,769 MB)


# --- the objects ---------------------------------------------------------------------------


def _block() -> tuple[bytes, bytes]:
    """(header line, 100k lines) of churn CSV from the training data generator."""
    from training.churn_data import COLUMNS, generate

    cols, _ = generate(BLOCK_ROWS, seed=11)
    text = [cols[c].astype(str) for c in COLUMNS]
    body = ("\n".join(",".join(r) for r in zip(*text, strict=True)) + "\n").encode()
    return (",".join(COLUMNS) + "\n").encode(), body


def put_objects(s3: Any, sizes: list[int]) -> dict[str, dict[str, Any]]:
    """A CSV and a Parquet object of each size (row groups of 128k rows, as a data lake writes them)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    header, block = _block()
    table = pacsv.read_csv(pa.py_buffer(header + block))
    out: dict[str, dict[str, Any]] = {}
    for n in sizes:
        assert n % BLOCK_ROWS == 0, n
        with tempfile.TemporaryFile() as fh:
            fh.write(header)
            for _ in range(n // BLOCK_ROWS):
                fh.write(block)
            size = fh.tell()
            fh.seek(0)
            s3.upload_fileobj(fh, BUCKET, f"incoming/bench-{n}.csv")
        out[f"csv-{n}"] = {"key": f"incoming/bench-{n}.csv", "rows": n, "format": "csv", "mb": size / 1e6}
        with tempfile.TemporaryFile() as fh:
            with pq.ParquetWriter(fh, table.schema) as writer:
                for _ in range(n // BLOCK_ROWS):
                    writer.write_table(table, row_group_size=128 * 1024)
            size = fh.tell()
            fh.seek(0)
            s3.upload_fileobj(fh, BUCKET, f"incoming/bench-{n}.parquet")
        out[f"parquet-{n}"] = {"key": f"incoming/bench-{n}.parquet", "rows": n, "format": "parquet", "mb": size / 1e6}
    return out


# --- probes: each in a fresh process ---------------------------------------------------------


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def probe_object() -> dict[str, float]:
    """One object through `process_object`, as the function runs it: seconds, CPU seconds, peak memory.

    The service is the function's own (`Function`), so its drift watch bins every chunk as it does in Lambda.
    """
    from handler import aws
    from handler.app import Function
    from handler.settings import Settings
    from handler.triggers.s3 import job as s3

    settings = Settings.from_env()
    service = Function(settings).started.require()
    service.model.load()
    client = aws.client("s3")
    before, cpu0 = _vm_hwm_mb(), _cpu_seconds()
    start = time.perf_counter()
    marker = s3.process_object(client, s3.ObjectRef(BUCKET, os.environ["BENCH_KEY"]), service, settings)
    seconds = time.perf_counter() - start
    assert marker["status"] == "done" and marker["errors"] == 0, marker
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu0,
        "rows": marker["rows"],
        "peak_rss_mb": _vm_hwm_mb(),
        "rss_before_mb": before,
    }


def probe_floor() -> dict[str, float]:
    """Each stage alone over the same object, in seconds: GET, readers, preprocessing, model, writers."""
    import io

    from handler import aws
    from handler.bootstrap import open_service
    from handler.core.service import prepare
    from handler.formats.base import text_coercer
    from handler.formats.csv import CsvPredictions, csv_chunks
    from handler.formats.jsonl import prediction_lines
    from handler.formats.parquet import ParquetPredictions, open_parquet, parquet_chunks
    from handler.s3_objects import S3Object
    from handler.settings import Settings
    from handler.triggers.s3.chunks import chunk_rows

    settings = Settings.from_env()
    service = open_service(settings)
    forward = service.model.load()
    client = aws.client("s3")
    csv_key, parquet_key = os.environ["BENCH_KEY"], os.environ["BENCH_PARQUET_KEY"]
    n = chunk_rows(service.coercer.features, settings.s3_chunk_rows)
    out: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        result = fn()
        out[name] = time.perf_counter() - start
        return result

    def get() -> None:
        body = client.get_object(Bucket=BUCKET, Key=csv_key)["Body"]
        while body.read(1 << 20):
            pass

    def read_csv() -> list[Any]:
        reader = S3Object(client, BUCKET, csv_key).stream()
        return list(csv_chunks(reader, text_coercer(service.coercer), n))

    def read_parquet() -> list[Any]:
        file = S3Object(client, BUCKET, parquet_key).seekable()
        return list(parquet_chunks(open_parquet(file, service.coercer), service.coercer, n))

    timed("s3_get_csv", get)
    chunks = timed("read_csv", read_csv)
    timed("read_parquet", read_parquet)
    inputs = timed("preprocess", lambda: [prepare(service.artifacts, c.columns, c.coded)[0] for c in chunks])
    outputs = timed("model", lambda: [forward(x) for x in inputs])
    names = service.output_names
    timed(
        "write_jsonl", lambda: [prediction_lines(c.rows, None, o, names) for c, o in zip(chunks, outputs, strict=True)]
    )

    def write(kind: Any) -> None:
        sink = io.BytesIO()
        writer = kind(sink, service.artifacts.signature.outputs)
        for c, o in zip(chunks, outputs, strict=True):
            writer.write(c.rows, None, o)
        writer.close()

    timed("write_csv", lambda: write(CsvPredictions))
    timed("write_parquet", lambda: write(ParquetPredictions))
    out["rows"] = float(sum(len(c.rows) for c in chunks))

    # The other form: rows handed over by the Map in batches of BulkBatchSize, as JSON, through lambda_handler.
    from handler.app import Function

    function = Function(settings)
    handle = function.handler()
    header, _, body = (
        client.get_object(Bucket=BUCKET, Key=csv_key, Range="bytes=0-4000000")["Body"].read().partition(b"\n")
    )
    names = header.decode().split(",")
    lines = body.decode().splitlines()[:-1][:100_000]
    items = [dict(zip(names, line.split(","), strict=True)) for line in lines]
    batch = int(os.environ.get("BENCH_BATCH_SIZE", "500"))
    events = [json.dumps({"BatchInput": {}, "Items": items[i : i + batch]}) for i in range(0, len(items), batch)]

    class Context:
        aws_request_id = "bench"
        function_name = "bench"
        memory_limit_in_mb = 1769
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def batches() -> None:
        for event in events:  # the runtime parses the payload and serialises the answer: both counted
            json.dumps(handle(json.loads(event), Context()))

    timed("map_batches", batches)
    out["map_batch_rows"] = float(len(items))
    out["map_batch_size"] = float(batch)
    return out


def probe_pyarrow() -> dict[str, float]:
    """The CSV object's bytes parsed from memory: by `read_csv` with its threads, its streaming reader, and ours.

    Each is called once untimed (the thread pool and the memory pool warm), then timed `PYARROW_REPEATS` times: the
    median is kept, the fastest reference a process gets, so the ratio against it is the harder one to meet.
    """
    import io
    import statistics

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from handler import aws

    body = aws.client("s3").get_object(Bucket=BUCKET, Key=os.environ["BENCH_KEY"])["Body"].read()

    def read_csv() -> None:
        pacsv.read_csv(pa.py_buffer(body), read_options=pacsv.ReadOptions(use_threads=True))

    def stream() -> None:
        options = pacsv.ReadOptions(use_threads=False, block_size=4 << 20)
        for _ in pacsv.open_csv(io.BytesIO(body), read_options=options):
            pass

    from handler.bootstrap import open_service
    from handler.formats.base import text_coercer
    from handler.formats.csv import csv_chunks
    from handler.settings import Settings
    from handler.triggers.s3.chunks import chunk_rows

    settings = Settings.from_env()
    coercer = open_service(settings).coercer
    rows = chunk_rows(coercer.features, settings.s3_chunk_rows)

    def ours() -> None:  # our CSV reader alone (blocks, parse, the coercer's judgement), from memory as pyarrow's
        for _ in csv_chunks(io.BytesIO(body), text_coercer(coercer), rows):
            pass

    out: dict[str, float] = {}
    for name, fn in (("read_csv_threads", read_csv), ("stream_one_thread", stream), ("our_reader", ours)):
        fn()
        seconds = []
        for _ in range(PYARROW_REPEATS):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        out[name] = statistics.median(seconds)
    out["threads"] = float(pa.cpu_count())
    return out


PYARROW_REPEATS = 3
PROBES = {"object": probe_object, "floor": probe_floor, "pyarrow": probe_pyarrow}


def probe(name: str, env: dict[str, str], timeout: float = 1800) -> Any:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.bulk", "--probe", name, out.name],
            cwd=ROOT,
            env={**os.environ, **QUIET, **LITERT, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0:
            raise RuntimeError(f"bulk probe {name} failed:\n{run.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


# --- the run -------------------------------------------------------------------------------


def run(sizes: list[int], repeats: int) -> dict[str, Any]:
    """Every object end to end (the smallest `repeats` times, the others once), the floors, the costs."""
    import boto3

    from benchmarks.local_s3 import local_s3

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores (shared)",
        "chunk_rows": os.environ.get("S3_CHUNK_ROWS") or "auto",
    }
    with local_s3() as env:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        objects = put_objects(s3, sizes)
        small = min(sizes)
        results["floor"] = probe(
            "floor",
            {
                **env,
                "BENCH_KEY": objects[f"csv-{small}"]["key"],
                "BENCH_PARQUET_KEY": objects[f"parquet-{small}"]["key"],
            },
        )
        runs: dict[str, Any] = {}
        parsed: list[dict[str, float]] = []  # pyarrow alone over the smallest CSV object, after each of its runs
        for name, obj in objects.items():
            samples = []
            reference = obj["format"] == "csv" and obj["rows"] == small
            load_before = _load()
            for _ in range(repeats if obj["rows"] == small else 1):
                samples.append(probe("object", {**env, "BENCH_KEY": obj["key"], "OUTPUT_BUCKET": BUCKET}))
                if reference:
                    parsed.append(probe("pyarrow", {**env, "BENCH_KEY": obj["key"]}))
            if reference:
                results["pyarrow"] = _against_pyarrow(samples, parsed, load_before, _load())
            best = sorted(samples, key=lambda s: s["seconds"])[len(samples) // 2]  # the median run
            runs[name] = {
                **obj,
                **best,
                "rows_per_second": obj["rows"] / best["seconds"],
                "all_seconds": [s["seconds"] for s in samples],
            }
        results["objects"] = runs
    results["costs"] = costs(results)
    return results


def _load() -> str:
    """The machine's load averages (1, 5, 15 min), as uptime prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _against_pyarrow(
    runs: list[dict[str, float]], parsed: list[dict[str, float]], load_before: str, load_after: str
) -> dict[str, Any]:
    """The S3 path's median end-to-end time against pyarrow's median parse of the same bytes, measured in turn."""

    def median(values: list[float]) -> float:  # the middle sample, as the table's median run
        return sorted(values)[len(values) // 2]

    ours = median([r["seconds"] for r in runs])
    read_csv = median([p["read_csv_threads"] for p in parsed])
    stream = median([p["stream_one_thread"] for p in parsed])
    return {
        "rows": runs[0]["rows"],
        "ours_seconds": ours,
        "read_csv_threads_seconds": read_csv,
        "stream_one_thread_seconds": stream,
        "ratio": read_csv / ours,  # rows/s end to end over read_csv's rows/s
        "ratio_to_stream": stream / ours,
        "our_reader_seconds": median([p["our_reader"] for p in parsed]),
        "pyarrow_threads": parsed[0]["threads"],
        "runs": len(runs),
        "load_before": load_before,
        "load_after": load_after,
    }


def costs(results: dict[str, Any]) -> dict[str, Any]:
    """Per format, from the smallest object's median run: Lambda's bill per million rows."""
    out: dict[str, Any] = {}
    for fmt in ("csv", "parquet"):
        runs = [r for r in results["objects"].values() if r["format"] == fmt]
        r = min(runs, key=lambda x: x["rows"])
        per_fmt: dict[str, Any] = {}
        for mb, vcpus in MEMORY_MB.items():
            seconds = max(r["seconds"], r["cpu_seconds"] / vcpus)  # one function of that size, estimated
            per_million = seconds * 1e6 / r["rows"]
            gb_seconds = per_million * mb / 1024
            dollars = gb_seconds * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST * 1e6 / r["rows"]
            per_fmt[str(mb)] = {
                "rows_per_second": r["rows"] / seconds,
                "gb_seconds_per_million": gb_seconds,
                "dollars_per_million": dollars,
            }
        out[fmt] = per_fmt
    return out


def table(results: dict[str, Any]) -> str:
    """The results table (RESULTS.md's "Bulk inference"), and its floor and memory lines."""
    o, f = results["objects"], results["floor"]
    lines = [
        f"Measured by `make bench` (benchmarks/bulk.py) on {results['when']} ({results['machine']}, churn on "
        f"LiteRT, drift watch on, S3_CHUNK_ROWS={results['chunk_rows']}, moto's S3 in its own process). Lambda x86: "
        + f"${PRICE_PER_GB_SECOND:.10f}".rstrip("0")
        + f" per GB-second and $0.20 per million requests (US East, first tier; looked up {PRICE_DATE}).",
        "",
        "| input | rows | MB | seconds | rows/s (one function) | peak RSS MB | "
        "1,769 MB: GB-s / M rows, $ / M rows | 3,008 MB: GB-s / M rows, $ / M rows |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in o.values():
        c = results["costs"][r["format"]]
        smallest = r["rows"] == min(v["rows"] for v in o.values() if v["format"] == r["format"])
        cells = [
            f"{c[mb]['gb_seconds_per_million']:.2f}, ${c[mb]['dollars_per_million']:.6f}" if smallest else "—"
            for mb in ("1769", "3008")
        ]
        lines.append(
            f"| {r['format']} | {r['rows']:,} | {r['mb']:.0f} | {r['seconds']:.2f} | {r['rows_per_second']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {cells[0]} | {cells[1]} |"
        )
    rows = f["rows"]
    floor = ", ".join(
        f"{label} {rows / f[key]:,.0f} rows/s"
        for key, label in (
            ("s3_get_csv", "S3 GET of the CSV"),
            ("read_csv", "CSV reader"),
            ("read_parquet", "Parquet reader"),
            ("preprocess", "preprocessing"),
            ("model", "model"),
            ("write_csv", "CSV writer"),
            ("write_jsonl", "JSON Lines writer (the same answers, for comparison)"),
            ("write_parquet", "Parquet writer"),
        )
    )
    lines += ["", f"Next to it, each stage alone over the same {rows:,.0f} rows, in the same run: {floor}."]
    ref = results.get("pyarrow")
    if ref:
        lines += [
            "",
            f"**CSV end to end against pyarrow's own parse of the same bytes (issue 24: at least 50%): "
            f"{ref['ratio']:.0%}.** The S3 path takes {ref['ours_seconds']:.2f} s for the {ref['rows']:,} rows "
            f"({ref['rows'] / ref['ours_seconds']:,.0f} rows/s: reading, parsing, the model, the drift watch, "
            f"the writers and S3 both ways); `pyarrow.csv.read_csv` with its {ref['pyarrow_threads']:.0f} threads "
            f"parses the bytes, already in memory, in {ref['read_csv_threads_seconds']:.2f} s "
            f"({ref['rows'] / ref['read_csv_threads_seconds']:,.0f} rows/s), and its streaming reader on one "
            f"thread in {ref['stream_one_thread_seconds']:.2f} s (ours is {ref['ratio_to_stream']:.0%} of that). "
            f"Our CSV reader alone over the same bytes in memory (blocks on two threads, every cell judged) takes "
            f"{ref['our_reader_seconds']:.2f} s: {ref['read_csv_threads_seconds'] / ref['our_reader_seconds']:.0%} "
            "of `read_csv`'s rate; the rest of the end-to-end time is the model's side, the writer and S3. "
            f"Medians of {ref['runs']} runs each, in turn, each in a fresh process; load average "
            f"{ref['load_before']} before, {ref['load_after']} after.",
        ]
    lines += [
        "",
        f"The rows form (Map batches of {f['map_batch_size']:.0f} CSV items, JSON in and out, through "
        f"`lambda_handler`, one warm function): {f['map_batch_rows'] / f['map_batches']:,.0f} rows/s.",
    ]
    lines.append("")
    for fmt in ("csv", "parquet"):
        sized = sorted((r for r in o.values() if r["format"] == fmt), key=lambda r: r["rows"])
        if len(sized) > 1:
            a, b = sized[0], sized[-1]
            lines.append(
                f"Peak memory, {fmt}: {a['peak_rss_mb']:.0f} MB for {a['rows']:,} rows, {b['peak_rss_mb']:.0f} MB for "
                f"{b['rows']:,} (×{b['peak_rss_mb'] / a['peak_rss_mb']:.2f})."
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probe", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", default="1000000,10000000", help="object sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the smallest objects (the median is kept)")
    args = parser.parse_args(argv)
    if args.probe:
        name, out = args.probe
        Path(out).write_text(json.dumps(PROBES[name]()))
        return
    results = run([int(n) for n in args.rows.split(",")], args.repeats)
    (HERE / "bulk_results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()

"""A billion rows, planned: BulkInference's prefix form simulated against AWS's own limits.

`python -m benchmarks.scale` prints, for 10M, 100M and 1B churn rows as CSV and as Parquet, the time and
Lambda's bill at the template's defaults and at the best settings a small search finds, and the limit that
binds (`--write` puts the table into benchmarks/RESULTS.md; `make bench` does, with the throughput its bulk
section measured). Every parameter is a flag (`--help`); the defaults, and where each comes from, are in Plan.

The simulation follows the objects through what AWS does to them, event by event: the Map starts one child per
object (at most MaxConcurrency open, at its start rate); the child invokes the function, which takes an idle
execution environment, or a new one (a cold start) while the function is under its concurrency limit and
Lambda's scaling rate allows, or is throttled: the Map's Retry invokes again after its backoff (the full jitter
spread evenly), and a child throttled past its last attempt fails the run (ToleratedFailurePercentage 0). An
invocation takes its object's rows at the function's measured throughput, plus a fixed time for its S3
requests; each prefix serves its requests in turn at S3's rate, so an object waits, billed, while its prefix is
busy. Objects that start together finish together. Deterministic: no randomness anywhere.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from benchmarks.bulk import PRICE_PER_GB_SECOND, PRICE_PER_REQUEST

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## A billion rows, planned (benchmarks/scale.py)"
ROWS = (10_000_000, 100_000_000, 1_000_000_000)
VCPU_MB = 1769  # Lambda gives one vCPU per 1,769 MB, in proportion to memory
UNRESERVED_MIN = 100  # Lambda refuses a reservation that leaves the account fewer unreserved executions
GATE_RESERVED = 1  # template.yaml's deployment gate reserves one execution whenever ReservedConcurrency is set
MAP_CONCURRENCY_MAX = 10_000  # a Distributed Map runs at most 10,000 children at once (its default)
JITTER_SLICES = 4  # a FULL-jitter delay is uniform below its cap: this many evenly spaced delays stand for it
TICK = 0.1  # seconds: the step taken while the Map waits for its start rate
PARQUET_ROW_GROUP = 128 * 1024  # rows, as benchmarks/bulk.py writes Parquet
ANSWER_BYTES = 20  # one churn answer in the predictions object ("999999,0.2216561\n" and a little)
PART_BYTES = 8 << 20  # S3_PART_BYTES


@dataclass(frozen=True)
class Throughput:
    """One function's rows/s: the measured end-to-end rate with CPU to spare, capped by its share of a vCPU."""

    wall: float  # rows/s of one function on the bench's 2 cores (benchmarks/bulk.py)
    per_vcpu: float  # rows per CPU-second, as bulk.py's cost column counts them

    def at(self, memory_mb: float) -> float:
        return min(self.wall, self.per_vcpu * memory_mb / VCPU_MB)


# benchmarks/RESULTS.md (2026-11-26), 1M-row objects, churn on LiteRT: rows/s end to end, and rows per CPU-second
# from the 1,769 MB column (1.67 and 0.65 GB-s per million rows at one vCPU).
MEASURED = {"csv": Throughput(1_170_266, 1_034_000), "parquet": Throughput(3_226_022, 2_658_000)}
# Cold starts measured in the images at 0.58 vCPU (issue 24); a larger function's are shorter, so these are high.
COLD_START_S = {"litert": 0.8, "tensorflow": 4.7}


def measured(bulk_results: dict[str, Any]) -> dict[str, Throughput]:
    """Throughput per format from a bulk run (benchmarks/bulk.py): its smallest object's, as its costs use it."""
    out = {}
    for fmt in ("csv", "parquet"):
        r = min((o for o in bulk_results["objects"].values() if o["format"] == fmt), key=lambda o: o["rows"])
        out[fmt] = Throughput(r["rows"] / r["seconds"], r["rows"] / r["cpu_seconds"])
    return out


@dataclass(frozen=True)
class Plan:
    """One run of BulkInference's prefix form: the data, the template's settings and AWS's documented limits."""

    rows: float
    fmt: str = "csv"
    rows_per_object: float = 1_000_000  # the bench's object: 81 MB of CSV, 15 MB of Parquet
    objects_per_prefix: float = 0  # 0: every object under one prefix (what {"prefix": ...} lists)
    throughput: float = 0  # rows/s of one function; 0: MEASURED[fmt] at memory_mb
    memory_mb: float = 2048  # MemorySize
    timeout_s: float = 60  # Timeout: an object must be done in one invocation
    cold_start_s: float = COLD_START_S["litert"]
    object_s: float = 0.3  # per object: ~8 small S3 requests in turn (markers, lease, outputs), tens of ms each
    reserved: float = 100  # ReservedConcurrency; 0: none, the account's unreserved pool (the whole quota here)
    quota: float = 1000  # Lambda's concurrent executions per account and Region, by default
    scaling_burst: float = 1000  # new execution environments a function may get at once, then refilled
    scaling_per_s: float = 100  # continuously: 1,000 every 10 s, per function
    max_concurrency: float = 100  # BulkMaxConcurrency
    start_burst: float = 1300  # the Map's children, assumed started as StartExecution calls of Standard
    starts_per_s: float = 300  # workflows may be (bucket 1,300, refill 300/s in us-east-1, us-west-2, eu-west-1)
    get_rate: float = 5500  # S3 GET/HEAD requests per second per (partitioned) prefix
    put_rate: float = 3500  # S3 PUT/COPY/POST/DELETE requests per second per prefix
    retry_interval_s: float = 2  # the Map's Retry on Lambda.TooManyRequestsException (template.yaml): 2 s,
    retry_backoff: float = 2  # doubling,
    retry_max_delay_s: float = 60  # to at most 60 s,
    retry_attempts: float = 6  # 6 times, FULL jitter

    @property
    def objects(self) -> int:
        return math.ceil(self.rows / self.rows_per_object)

    @property
    def concurrency(self) -> float:
        """The function's concurrency limit: its reservation, or without one the account's quota."""
        return self.reserved or self.quota


@dataclass(frozen=True)
class Run:
    seconds: float
    dollars: float  # Lambda's bill: GB-seconds (cold starts and S3 waits included) and requests
    gb_seconds: float
    cold_starts: int
    throttled: int  # invokes Lambda refused (429), each retried by the Map
    failed: int  # children throttled past their last retry: the run fails
    s3_requests: int
    longest_s: float  # the longest invocation, against Timeout
    timeout_s: float

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.longest_s <= self.timeout_s


def requests_per_object(rows: float, fmt: str) -> tuple[int, int]:
    """(GET/HEAD, PUT/POST/DELETE) requests the S3 path makes for one object (handler/triggers/s3/job.py)."""
    gets = 2  # the marker and the lease, read first
    gets += 1 if fmt == "csv" else 2 + math.ceil(rows / PARQUET_ROW_GROUP)  # one streamed GET; HEAD, footer, groups
    answers = rows * ANSWER_BYTES
    predictions = 1 if answers < PART_BYTES else 2 + math.ceil(answers / PART_BYTES)  # a PUT, or a multipart upload
    return gets, 4 + 1 + predictions  # lease, lease completing, marker, the lease's DELETE; errors; predictions


class _Simulation:
    """The state of one run; `run()` goes from event to event (a finish, a retry, the Map's next start)."""

    def __init__(self, p: Plan) -> None:
        self.p, self.t, self.last, self.n = p, 0.0, 0.0, p.objects
        rows = p.rows / self.n  # objects of about equal size
        self.work = p.object_s + rows / (p.throughput or MEASURED[p.fmt].at(p.memory_mb))  # S3 keeping up
        self.gets, self.puts = requests_per_object(rows, p.fmt)
        self.per_prefix = int(p.objects_per_prefix) or self.n
        self.clocks: dict[int, tuple[float, float]] = {}  # prefix: when it has served every GET, every PUT asked
        self.map_tokens, self.env_tokens = p.start_burst, p.scaling_burst
        self.started = self.ran = self.open = self.envs = self.idle = self.cold = self.throttled = self.failed = 0
        self.billed = self.longest = 0.0
        self.running: list[tuple[float, int]] = []  # (done at, invocations)
        self.retrying: list[tuple[float, int, int]] = []  # (retry at, attempts so far, children)

    def run(self) -> Run:
        p = self.p
        while self.started < self.n or self.running or self.retrying:
            self.map_tokens = min(p.start_burst, self.map_tokens + (self.t - self.last) * p.starts_per_s)
            self.env_tokens = min(p.scaling_burst, self.env_tokens + (self.t - self.last) * p.scaling_per_s)
            self.last = self.t
            while self.running and self.running[0][0] <= self.t:  # done: the environment idles, the child closes
                _, k = heapq.heappop(self.running)
                self.idle, self.open = self.idle + k, self.open - k
            while self.retrying and self.retrying[0][0] <= self.t:
                _, attempts, k = heapq.heappop(self.retrying)
                self._invoke(k, attempts)
            new = int(min(self.n - self.started, p.max_concurrency - self.open, self.map_tokens))
            if new > 0:
                self.started, self.open, self.map_tokens = self.started + new, self.open + new, self.map_tokens - new
                self._invoke(new, 0)
            self.t = self._next_event()
        gb_seconds = self.billed * p.memory_mb / 1024
        dollars = gb_seconds * PRICE_PER_GB_SECOND + self.n * PRICE_PER_REQUEST
        requests = self.n * (self.gets + self.puts)
        return Run(self.t, dollars, gb_seconds, self.cold, self.throttled, self.failed, requests, self.longest,
                   p.timeout_s)  # fmt: skip

    def _invoke(self, k: int, attempts: int) -> None:
        """k children invoke the function: idle environments first, then new ones; the rest are throttled."""
        p, warm = self.p, min(k, self.idle)
        fresh = int(min(k - warm, p.concurrency - self.envs, self.env_tokens))
        self.idle, self.envs, self.env_tokens = self.idle - warm, self.envs + fresh, self.env_tokens - fresh
        self.cold += fresh
        self._launch(warm, 0.0)
        self._launch(fresh, p.cold_start_s)
        refused = k - warm - fresh
        self.throttled += refused
        if refused and attempts >= p.retry_attempts:
            self.failed, self.open = self.failed + refused, self.open - refused
        elif refused:
            cap = min(p.retry_max_delay_s, p.retry_interval_s * p.retry_backoff**attempts)
            for i in range(JITTER_SLICES):
                share = refused // JITTER_SLICES + (i < refused % JITTER_SLICES)
                if share:
                    retry_at = self.t + cap * (2 * i + 1) / (2 * JITTER_SLICES)
                    heapq.heappush(self.retrying, (retry_at, attempts + 1, share))

    def _launch(self, k: int, init_s: float) -> None:
        """k invocations start now, on the next objects in key order, prefix by prefix."""
        while k:
            prefix, c = self.ran // self.per_prefix, min(k, self.per_prefix - self.ran % self.per_prefix)
            get_clock, put_clock = self.clocks.get(prefix, (0.0, 0.0))
            get_clock = max(get_clock, self.t) + c * self.gets / self.p.get_rate  # served in turn at the rate
            put_clock = max(put_clock, self.t) + c * self.puts / self.p.put_rate
            self.clocks[prefix] = (get_clock, put_clock)
            done = max(self.t + init_s + self.work, get_clock, put_clock)
            heapq.heappush(self.running, (done, c))
            self.billed, self.longest = self.billed + c * (done - self.t), max(self.longest, done - self.t)
            self.ran, k = self.ran + c, k - c

    def _next_event(self) -> float:
        times = [self.running[0][0]] if self.running else []
        if self.retrying:
            times.append(self.retrying[0][0])
        if self.started < self.n and self.open < self.p.max_concurrency:  # the Map waits for its start rate
            times.append(self.t + max(TICK, (1 - self.map_tokens) / self.p.starts_per_s))
        return min(times) if times else self.t


def simulate(p: Plan) -> Run:
    """Time, cost and counts of one run of `p`."""
    if p.max_concurrency < 1 or p.rows_per_object <= 0:
        raise ValueError("MaxConcurrency must be at least 1 and objects must hold rows")
    return _Simulation(p).run()


def binding(p: Plan) -> tuple[str, float]:
    """The limit that binds, and how many times faster the run is with it lifted (each alone; the best kept)."""
    inf, base = math.inf, simulate(p)
    if not base.ok:
        return "fails: " + (f"{base.failed:,} children throttled past their retries" if base.failed else "Timeout"), 1
    lam = "ReservedConcurrency" if p.reserved else "the account's quota"
    concurrency = (
        f"MaxConcurrency and {lam} ({p.concurrency:,.0f})" if p.max_concurrency == p.concurrency
        else f"MaxConcurrency ({p.max_concurrency:,.0f})" if p.max_concurrency < p.concurrency
        else f"{lam} ({p.concurrency:,.0f})"
    )  # fmt: skip
    lifted = {
        concurrency: replace(p, max_concurrency=inf, reserved=0, quota=inf),
        "Lambda's scaling rate": replace(p, scaling_burst=inf, scaling_per_s=inf),
        f"the Map's start rate ({p.starts_per_s:,.0f}/s)": replace(p, start_burst=inf, starts_per_s=inf),
        "S3's requests per prefix": replace(p, get_rate=inf, put_rate=inf),
        f"cold starts ({p.cold_start_s:g} s)": replace(p, cold_start_s=0),
    }
    gains = {name: base.seconds / simulate(q).seconds for name, q in lifted.items()}
    name = max(gains, key=lambda k: gains[k])
    if gains[name] < 1.05:  # nothing outside the objects holds the run back
        return f"one object's time ({p.objects:,} objects, one function each)", 1.0
    return name, gains[name]


def candidates(p: Plan) -> list[Plan]:
    """The settings searched: rows per object, (MaxConcurrency, ReservedConcurrency) up to the quota, prefixes."""
    top = p.quota - UNRESERVED_MIN - GATE_RESERVED  # the largest reservation Lambda accepts
    pairs = [(c, c) for c in (100, 300, top) if c <= top] + [(min(p.quota, MAP_CONCURRENCY_MAX), 0)]
    layouts = [r for r in (100_000, 300_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000) if r <= p.rows]
    return [replace(p, rows_per_object=r, max_concurrency=m, reserved=res, objects_per_prefix=k)
            for r in layouts for m, res in pairs for k in (0, 100)]  # fmt: skip


def best(p: Plan) -> tuple[Plan, Run]:
    """The fastest run that succeeds; of those within 5% of it, the cheapest."""
    runs = [(q, r) for q in candidates(p) if (r := simulate(q)).ok]
    fastest = min(r.seconds for _, r in runs)
    return min(((q, r) for q, r in runs if r.seconds <= 1.05 * fastest), key=lambda qr: (qr[1].dollars, qr[1].seconds))


def run(throughputs: dict[str, Throughput] | None = None, **overrides: Any) -> dict[str, Any]:
    """Every case of the table, as figures (`table()` makes RESULTS.md's section of them)."""
    out: dict[str, Any] = {"plan": asdict(Plan(0, **overrides)), "cases": []}
    for fmt in ("csv", "parquet"):
        for rows in ROWS:
            plan = Plan(rows, fmt, **overrides)
            plan = replace(plan, throughput=(throughputs or MEASURED)[fmt].at(plan.memory_mb))
            for label, (chosen, result) in (("defaults", (plan, simulate(plan))), ("best", best(plan))):
                limit, gain = binding(chosen)
                out["cases"].append({"settings": label, "plan": asdict(chosen), "run": asdict(result),
                                     "binds": limit, "lifted": gain})  # fmt: skip
    return out


def table(results: dict[str, Any]) -> str:
    """The markdown section RESULTS.md holds."""
    p = results["plan"]
    lines = [
        f"Simulated, not measured (`python -m benchmarks.scale`): BulkInference's prefix form, churn on LiteRT at "
        f"{p['memory_mb']:,.0f} MB, Timeout {p['timeout_s']:g} s, cold start {p['cold_start_s']:g} s; Lambda's quota "
        f"{p['quota']:,.0f}, 1,000 new environments per 10 s; the Map's children started at up to "
        f"{p['starts_per_s']:,.0f}/s (burst {p['start_burst']:,.0f}); S3 {p['get_rate']:,.0f} GET and "
        f"{p['put_rate']:,.0f} PUT per second per prefix. The bill is Lambda's (cold starts included); Step "
        "Functions' transitions and S3's requests are not priced. \"Lifted\": the run with that limit alone lifted.",
        "",
        "| rows | input | settings | time | Lambda $ | cold starts | S3 requests | binds | lifted |",
        "|---:|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for c in results["cases"]:
        r, q, s = c["run"], c["plan"], c["run"]["seconds"]
        reserved = f"ReservedConcurrency {q['reserved']:,.0f}" if q["reserved"] else "no ReservedConcurrency"
        layout = f"{math.ceil(q['rows'] / q['rows_per_object']):,} objects of {q['rows_per_object']:,.0f} rows, " + (
            f"{q['objects_per_prefix']:,.0f} per prefix" if q["objects_per_prefix"] else "one prefix"
        )
        cells = [f"{q['rows']:,.0f}", q["fmt"], f"{c['settings']}: MaxConcurrency {q['max_concurrency']:,.0f}, "
                 f"{reserved}; {layout}", f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min", f"${r['dollars']:.4f}",
                 f"{r['cold_starts']:,}", f"{r['s3_requests']:,}", c["binds"],
                 f"{c['lifted']:.1f}× faster" if c["lifted"] > 1 else "—"]  # fmt: skip
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def write_section(text: str, path: Path = RESULTS_MD) -> None:
    """Put this section into RESULTS.md in place: where it was, or after the bulk section."""
    doc = path.read_text().rstrip("\n") + "\n"
    start = doc.find(SECTION)
    if start >= 0:
        end = doc.find("\n## ", start) + 1 or len(doc)
    else:
        bulk = doc.find("## Bulk inference")
        start = end = (doc.find("\n## ", bulk) + 1 or len(doc)) if bulk >= 0 else len(doc)
    before, after = doc[:start].rstrip("\n"), doc[end:]
    path.write_text(f"{before}\n\n{SECTION}\n\n{text}\n" + (f"\n{after}" if after else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Plan)[5:]:  # the settings and the limits; rows and layout are what the table varies
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=f.default)
    parser.add_argument("--runtime", choices=sorted(COLD_START_S), help="the cold start measured for this runtime")
    parser.add_argument("--bulk-results", type=Path, help="the throughput of a bulk run (bulk_results.json)")
    parser.add_argument("--write", action="store_true", help=f"put the table into {RESULTS_MD}")
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(Plan)[5:]}
    if args.runtime:
        overrides["cold_start_s"] = COLD_START_S[args.runtime]
    results = run(measured(json.loads(args.bulk_results.read_text())) if args.bulk_results else None, **overrides)
    print(table(results))
    if args.write:
        write_section(table(results))


if __name__ == "__main__":
    main()

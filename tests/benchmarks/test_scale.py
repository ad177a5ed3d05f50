"""benchmarks/scale.py: each expected figure is worked out by hand here, from the limit it tests."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale
from benchmarks.bulk import PRICE_PER_GB_SECOND, PRICE_PER_REQUEST
from benchmarks.scale import Plan, best, binding, requests_per_object, simulate

ROOT = Path(__file__).resolve().parents[2]
INF = math.inf
# Every limit lifted and nothing but the rows: each test puts back the limits it is about.
FREE: dict[str, float] = {
    **dict(cold_start_s=0, object_s=0, reserved=0, quota=INF, max_concurrency=INF, timeout_s=INF),
    **dict(scaling_burst=INF, scaling_per_s=INF, start_burst=INF, starts_per_s=INF, get_rate=INF, put_rate=INF),
}


def free(rows: float, **settings: float) -> Plan:
    """`rows` CSV rows with every limit lifted but `settings`."""
    changes: dict[str, Any] = {**FREE, **settings}
    return replace(Plan(rows), **changes)


def test_unlimited_concurrency_takes_rows_over_throughput_times_concurrency() -> None:
    # 1e9 rows in 1,000 objects on 1,000 functions at 1e6 rows/s: each function takes its 1e6 rows in 1 s, all at once.
    plan = free(1e9, rows_per_object=1e6, throughput=1e6, max_concurrency=1000)
    run = simulate(plan)
    assert run.seconds == pytest.approx(1e9 / (1e6 * 1000))
    assert run.cold_starts == 1000 and run.throttled == 0
    # Lambda bills 1,000 invocations of 1 s at 2,048 MB: 2,000 GB-s, and 1,000 requests.
    assert run.gb_seconds == pytest.approx(1000 * 1.0 * 2048 / 1024)
    assert run.dollars == pytest.approx(2000 * PRICE_PER_GB_SECOND + 1000 * PRICE_PER_REQUEST)
    # Twice the objects on the same 1,000 functions: two waves of 1 s; the second wave's environments are warm.
    twice = simulate(free(2e9, rows_per_object=1e6, throughput=1e6, max_concurrency=1000))
    assert twice.seconds == pytest.approx(2.0) and twice.cold_starts == 1000


def test_cold_start_and_object_time_add_to_the_first_wave_only() -> None:
    # 200 objects of 1 s on 100 functions: wave one is 0.8 s cold + 0.3 s of requests + 1 s; wave two 0.3 + 1 s warm.
    plan = free(200e6, rows_per_object=1e6, throughput=1e6, max_concurrency=100, cold_start_s=0.8, object_s=0.3)
    assert simulate(plan).seconds == pytest.approx((0.8 + 0.3 + 1) + (0.3 + 1))


def test_scaling_at_1000_environments_per_10_s_ramps_to_3000_in_20_to_30_s() -> None:
    # 1,000 new environments at once, then 100 a second (1,000 every 10 s, refilled continuously): the other 2,000
    # take 20 s. Throttled children retrying at least every second get the last one within a second of that.
    # Objects last 100 s, so none ends during the ramp: the run ends 100 s after the 3,000th invocation starts.
    ramp = dict(quota=3000, max_concurrency=3000, scaling_burst=1000, scaling_per_s=100, object_s=100, timeout_s=900)
    steady = simulate(free(3000, rows_per_object=1, throughput=1e9, **ramp, retry_max_delay_s=1, retry_attempts=1e3))
    assert 20 <= steady.seconds - 100 <= 21
    assert steady.cold_starts == 3000 and steady.failed == 0 and steady.throttled > 0
    # With the template's Retry (2 s doubling to 60 s, full jitter) children come back ever more rarely and part of
    # the refill goes unused: every child still gets in (none is throttled past its 6 retries), later than 20 s and
    # before its last retry could come (2 + 4 + 8 + 16 + 32 + 60 s).
    template = simulate(free(3000, rows_per_object=1, throughput=1e9, **ramp))
    assert 20 < template.seconds - 100 < 122 and template.failed == 0


def test_a_prefix_asked_for_more_gets_than_s3_serves_is_throttled_to_its_rate() -> None:
    # 5,500 tiny CSV objects under one prefix, each 3 GETs (marker, lease, the object): 16,500 GETs at 5,500/s
    # take 3 s however fast the functions are. PUTs are lifted so that the GETs alone bind.
    assert requests_per_object(1, "csv")[0] == 3
    one = free(5500, rows_per_object=1, throughput=1e12, get_rate=5500)
    run = simulate(one)
    assert run.seconds == pytest.approx(5500 * 3 / 5500)
    assert binding(one)[0] == "S3's requests per prefix"
    # Ten prefixes of 550 objects: each serves its 1,650 GETs at 5,500/s, side by side: 0.3 s.
    assert simulate(replace(one, objects_per_prefix=550)).seconds == pytest.approx(0.3)


def test_requests_per_object_follow_the_s3_path() -> None:
    # CSV, 1M rows: marker and lease read, one streamed GET; 20 MB of answers = create + 3 parts + complete, the
    # errors object, the lease written twice, the marker, the lease deleted.
    assert requests_per_object(1e6, "csv") == (3, 4 + 1 + 2 + 3)
    # Parquet, 1M rows: marker and lease, a HEAD and the footer, one ranged GET per 128k-row group (8).
    assert requests_per_object(1e6, "parquet") == (2 + 2 + 8, 10)
    # A small answer is one PUT.
    assert requests_per_object(1000, "csv") == (3, 6)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        # 10,000 objects of 1 s on 100 children: 100 s, 1 s with no limit on concurrency.
        ({"max_concurrency": 100, "reserved": 899, "quota": 1000}, "MaxConcurrency (100)"),
        ({"max_concurrency": 100, "reserved": 100, "quota": 1000}, "MaxConcurrency and ReservedConcurrency (100)"),
        ({"max_concurrency": 1000, "reserved": 0, "quota": 1000}, "MaxConcurrency and the account's quota (1,000)"),
        # The Map starts 1,300 at once, then 300 a second: the last of 10,000 starts after 29 s.
        ({"start_burst": 1300, "starts_per_s": 300}, "the Map's start rate (300/s)"),
        # 1,000 environments at once, then 100 a second: 9,000 more take 90 s.
        ({"scaling_burst": 1000, "scaling_per_s": 100, "timeout_s": 900}, "Lambda's scaling rate"),
        # Everything else free: a 5 s cold start makes each 1 s object take 6 s; lifted, the run is 6 times faster.
        ({"cold_start_s": 5}, "cold starts (5 s)"),
    ],
)
def test_the_binding_limit_is_the_one_constructed(limits: dict[str, float], expected: str) -> None:
    plan = free(10_000, rows_per_object=1, throughput=1, **limits)
    name, gain = binding(plan)
    assert name == expected
    assert gain > 1.05


def test_one_object_per_function_is_bound_by_the_object_itself() -> None:
    # 10 objects on 100 functions, nothing else in the way: 10 s of rows each, and no limit to lift.
    plan = free(100e6, rows_per_object=10e6, throughput=1e6, max_concurrency=100)
    assert simulate(plan).seconds == pytest.approx(10)
    assert binding(plan) == ("one object's time (10 objects, one function each)", 1.0)


def test_maxconcurrency_over_reservedconcurrency_fails_the_run() -> None:
    # 1,000 children on 100 environments for objects of 1,000 s: no environment frees up while the other 900 retry
    # (6 retries, at most 2+4+8+16+32+60 s), so all 900 are throttled past their last retry.
    plan = free(1000, rows_per_object=1, throughput=1, max_concurrency=1000, reserved=100, object_s=999)
    run = simulate(plan)
    assert run.failed == 900 and not run.ok
    assert binding(plan)[0] == "fails: 900 children throttled past their retries"


def test_an_object_longer_than_timeout_is_never_the_best() -> None:
    # 30M CSV rows in one object take ~26 s at 1.17M rows/s: over a 10 s Timeout; the search splits the rows.
    plan = Plan(30e6, throughput=1.17e6, timeout_s=10)
    assert not simulate(replace(plan, rows_per_object=30e6)).ok
    chosen, run = best(plan)
    assert run.ok and run.longest_s <= 10 and chosen.rows_per_object < 30e6


def test_defaults_are_the_templates() -> None:
    text = (ROOT / "template.yaml").read_text()

    def default(name: str) -> float:
        found = re.search(rf"^  {name}:\n    Type: Number\n    Default: (\d+)", text, re.M)
        assert found, name
        return float(found.group(1))

    plan = Plan(1)
    assert (plan.memory_mb, plan.timeout_s) == (default("MemorySize"), default("Timeout"))
    assert (plan.reserved, plan.max_concurrency) == (default("ReservedConcurrency"), default("BulkMaxConcurrency"))
    retry = re.search(
        r"PredictObject:.*?Lambda\.TooManyRequestsException.*?IntervalSeconds: (\d+)\s+MaxAttempts: (\d+)\s+"
        r"BackoffRate: (\d+)\s+MaxDelaySeconds: (\d+)\s+JitterStrategy: FULL",
        text,
        re.S,
    )
    assert retry, "the prefix Map's Retry on Lambda.TooManyRequestsException"
    interval, attempts, backoff, max_delay = map(float, retry.groups())
    assert (plan.retry_interval_s, plan.retry_attempts, plan.retry_backoff, plan.retry_max_delay_s) == (
        interval, attempts, backoff, max_delay
    )  # fmt: skip


def test_the_whole_table_is_deterministic_and_fast() -> None:
    start = time.perf_counter()
    first = scale.run()
    assert time.perf_counter() - start < 2
    assert scale.run() == first
    assert len(first["cases"]) == 12
    for case in first["cases"]:
        assert case["run"]["failed"] == 0 and case["run"]["longest_s"] <= 60
        if case["settings"] == "best":  # never slower than the defaults of the same rows and input
            default = next(c for c in first["cases"] if c["settings"] == "defaults" and c["plan"]["rows"] ==
                           case["plan"]["rows"] and c["plan"]["fmt"] == case["plan"]["fmt"])  # fmt: skip
            assert case["run"]["seconds"] <= default["run"]["seconds"]
    # At the template's defaults a billion rows wait on the 100 concurrent children.
    billion = [c for c in first["cases"] if c["plan"]["rows"] == 1e9 and c["settings"] == "defaults"]
    assert all(c["binds"] == "MaxConcurrency and ReservedConcurrency (100)" for c in billion)


def test_the_section_goes_after_the_bulk_section_and_then_replaces_itself(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n## Bulk inference (benchmarks/bulk.py)\n\nbulk\n\n## Images\n\nimages\n")
    scale.write_section("first", path)
    scale.write_section("second", path)
    section = f"{scale.SECTION}\n\nsecond\n"
    assert (
        path.read_text() == f"# R\n\n## Bulk inference (benchmarks/bulk.py)\n\nbulk\n\n{section}\n## Images\n\nimages\n"
    )
    # With no bulk section (a run that skipped it), at the end.
    path.write_text("# R\n\n## Images\n\nimages\n")
    scale.write_section("second", path)
    assert path.read_text() == f"# R\n\n## Images\n\nimages\n\n{section}"

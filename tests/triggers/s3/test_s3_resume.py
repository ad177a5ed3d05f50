"""Jobs that outlive their invocation: stop before the deadline, go on in the next one, same bytes as one run.

The Lambda context is a stand-in whose remaining time the test controls; the continuation the job invokes
(asynchronously, in Lambda) is handed to the job again here, as Lambda would. The reference is the same
object predicted in one long run: the outputs must be the same bytes, and every row answered once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest

from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import checkpoint, chunks
from handler.triggers.s3 import job as s3_source
from tests.support.moto_s3 import COLUMNS, churn_rows, csv_bytes, s3_put_event


@dataclass
class Countdown:
    """A Lambda context that has plenty of time for `chunks` checks, then only a second left."""

    chunks: int
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:skewless:live"
    aws_request_id: str = "resume-test"
    calls: int = 0

    def get_remaining_time_in_millis(self) -> int:
        self.calls += 1
        return 60_000 if self.calls <= self.chunks else 1_000


@dataclass
class Clock:
    """A Lambda context with a real deadline `seconds` from its creation, as Lambda's timeout gives."""

    seconds: float
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:skewless"
    aws_request_id: str = "resume-clock"

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def _outputs(s3: Any, bucket: str, key: str, fmt_suffix: str) -> dict[str, bytes]:
    base = "predictions/" + key.removeprefix("incoming/")
    return {
        suffix: s3.get_object(Bucket=bucket, Key=base + suffix)["Body"].read()
        for suffix in (fmt_suffix, ".errors.jsonl")
    }


def _run_until_done(
    event: dict[str, Any], contexts: Any, service: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], int]:
    """Handle the event, then every continuation it invokes, as Lambda would; (the final marker, invocations)."""
    invoked: list[dict[str, Any]] = []
    monkeypatch.setattr(checkpoint, "invoke_continuation", lambda context, ev: invoked.append(ev))
    result = s3_source.handle_event(event, next(contexts), service, settings)["objects"][0]
    runs = 1
    while result["status"] == "continuing":
        assert len(invoked) == runs, "a suspended job did not invoke its continuation"
        pending = json.loads(json.dumps(invoked[-1]))  # what travels through Lambda: JSON
        result = s3_source.handle_continuation(pending, next(contexts), service, settings)["objects"][0]
        runs += 1
        assert runs < 200, "the job is not making progress"
    return result, runs


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_job_suspended_between_chunks_writes_the_same_bytes_as_one_run(
    fmt: str, s3: Any, bucket: str, service: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = churn_rows(6000, seed=11)
    body = csv_bytes(rows, COLUMNS) if fmt == "csv" else "".join(json.dumps(r) + "\n" for r in rows).encode()
    body += b"not,a,row\n" if fmt == "csv" else b'{"age": "old"}\n'  # one refused row: the errors object resumes too
    small = replace(settings, s3_chunk_rows=500, s3_part_bytes=5 << 20)
    once, parts = f"incoming/once.{fmt}", f"incoming/parts.{fmt}"
    for key in (once, parts):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    one_run = s3_source.handle_event(s3_put_event(bucket, once), Countdown(10**6), service, small)["objects"][0]
    assert one_run["status"] == "done" and one_run["rows"] == 6001, one_run
    contexts = iter([Countdown(3)] * 1000)  # three chunks an invocation
    final, runs = _run_until_done(s3_put_event(bucket, parts), contexts, service, small, monkeypatch)
    assert runs >= 4, f"the job was not spread over invocations ({runs})"
    assert (final["status"], final["rows"], final["predicted"], final["errors"]) == ("done", 6001, 6000, 1), final
    suffix = ".csv" if fmt == "csv" else ".jsonl"
    assert _outputs(s3, bucket, parts, suffix) == _outputs(s3, bucket, once, suffix), "not the bytes of one run"
    left = s3.list_objects_v2(Bucket=bucket, Prefix="predictions/parts").get("Contents", [])
    assert sorted(o["Key"].rsplit(".", 2)[-2:][-1] for o in left) == sorted(["json", "jsonl", suffix[1:]]), left
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "an upload was left open"


@pytest.mark.slow
def test_two_million_rows_with_a_five_second_timeout_give_the_same_bytes_as_one_run(
    s3: Any, bucket: str, service: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: an object far longer than one invocation, on a real clock (5 s, as a function's timeout)."""
    block = csv_bytes(churn_rows(20_000, seed=12), COLUMNS)
    header, _, rows = block.partition(b"\n")
    body = header + b"\n" + rows * 100  # 2,000,000 rows
    for key in ("incoming/big-once.csv", "incoming/big-parts.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    service.model.load()
    one_run = s3_source.handle_event(s3_put_event(bucket, "incoming/big-once.csv"), None, service, settings)
    assert one_run["objects"][0]["rows"] == 2_000_000
    # As slow as a 1,024 MB function (0.58 vCPU) is, about: each chunk (32,768 rows) 0.1 s longer than here.
    real = chunks.write_chunk
    monkeypatch.setattr(chunks, "write_chunk", lambda *args: (time.sleep(0.1), real(*args)))
    contexts = iter(Clock(5.0) for _ in range(1000))
    event = s3_put_event(bucket, "incoming/big-parts.csv")
    final, runs = _run_until_done(event, contexts, service, settings, monkeypatch)
    assert runs >= 3 and final["rows"] == 2_000_000 and final["predicted"] == 2_000_000, (runs, final)
    once, parts = (_outputs(s3, bucket, f"incoming/big-{k}.csv", ".csv") for k in ("once", "parts"))
    assert parts == once, "not the bytes of one run"

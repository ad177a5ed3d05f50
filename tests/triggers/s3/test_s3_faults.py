"""S3 faults: the server dies or goes dark mid-file, the object vanishes, an output write is refused.

Each time the event must raise (so Lambda retries it), nothing half-written may be visible as complete
(a done marker only ever describes whole outputs, and no object is ever a truncated one), and the
retry must produce exactly one complete output: every row, once, in order.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import botocore.exceptions
import numpy as np
import pytest
import urllib3.exceptions

from handler import aws
from handler.core.service import Service
from handler.s3_objects import S3Object
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.faults import CuttableProxy, MotoProcess, fast_client
from tests.support.moto_s3 import (
    COLUMNS,
    churn_rows,
    csv_bytes,
    expected_predictions,
    read_predictions,
    s3_put_event,
)

PART = 5 * 1024 * 1024
NETWORK_ERRORS = (botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError, OSError)


def big_csv(repeats: int, block_rows: int = 2000) -> tuple[bytes, list[dict[str, Any]], int]:
    """A CSV of block_rows x repeats rows (one block repeated: cheap to build, easy to check)."""
    rows = churn_rows(block_rows, seed=21)
    block = csv_bytes(rows, COLUMNS)
    header, _, body = block.partition(b"\n")
    return header + b"\n" + body * repeats, rows, block_rows * repeats


class Tripwire(io.RawIOBase):
    """The object's byte stream, calling `fire` once after `after` bytes have been read."""

    def __init__(self, body: Any, after: int, fire: Callable[[], None]) -> None:
        self._body, self._after, self._fire = body, after, fire
        self.read_bytes = 0
        self.fired_at: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._body.read(len(b))
        self.read_bytes += len(data)
        if self.fired_at is None and self.read_bytes >= self._after:
            self.fired_at = self.read_bytes
            self._fire()
        b[: len(data)] = data
        return len(data)


def arm(monkeypatch: pytest.MonkeyPatch, after: int, fire: Callable[[], None]) -> list[Tripwire]:
    """Make the next object reads go through a Tripwire."""
    wires: list[Tripwire] = []

    real = S3Object.open_body
    fired: list[bool] = []

    def once() -> None:  # a read resumed after the fault opens a body of its own: the fault happens once
        if not fired:
            fired.append(True)
            fire()

    def open_body(self: S3Object, start: int, end: int | None = None) -> Any:
        wire = Tripwire(real(self, start, end), after, once)
        wires.append(wire)
        return wire

    monkeypatch.setattr(S3Object, "open_body", open_body)
    return wires


def outputs(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="predictions/").get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _restore(proxy: CuttableProxy) -> None:
    """Bring the dark endpoint back. The proxy's closed listener stays bound while its accept() waits, until
    a connection arrives (the old reader made one when it aborted an upload; a failed read may leave none to
    abort, pyarrow having read ahead): knock once, as the retried invocation's first request would."""
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        try:
            proxy.restore()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def predictions_key(key: str) -> str:
    """Where the predictions of an input go: CSV for a CSV, JSON Lines for JSON Lines and .npy."""
    return "predictions/" + key.removeprefix("incoming/") + (".csv" if key.endswith(".csv") else ".jsonl")


def assert_one_complete_output(s3: Any, bucket: str, key: str, n_rows: int, service: Service, rows: list) -> None:
    base = "predictions/" + key.removeprefix("incoming/")
    got = outputs(s3, bucket)
    assert sorted(got) == sorted([base + ".done.json", base + ".errors.jsonl", predictions_key(key)]), sorted(got)
    marker = json.loads(got[base + ".done.json"])
    assert (marker["status"], marker["rows"], marker["predicted"], marker["errors"]) == ("done", n_rows, n_rows, 0)
    preds = read_predictions(s3, bucket, predictions_key(key))
    assert [p["row"] for p in preds] == list(range(n_rows)), "a row was lost, duplicated or reordered"
    want = np.tile(expected_predictions(rows), (n_rows // len(rows), 1))
    worst = float(np.max(np.abs(np.asarray([p["prediction"] for p in preds]) - want)))
    assert worst <= 1e-5, f"predictions after the retry differ by {worst}"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "a multipart upload was left open"


def assert_nothing_complete(s3: Any, bucket: str, key: str, n_rows: int) -> None:
    """After a failed attempt: no done marker, and any visible output object is whole, never truncated."""
    base = "predictions/" + key.removeprefix("incoming/")
    got = outputs(s3, bucket)
    assert base + ".done.json" not in got, "a completion marker was written for a failed attempt"
    preds_key = predictions_key(key)
    if preds_key in got:
        header = 1 if preds_key.endswith(".csv") else 0
        assert len(got[preds_key].splitlines()) == header + n_rows, "a truncated predictions object is visible"


def test_s3_server_killed_mid_read_fails_the_event_and_the_retry_writes_one_complete_output(
    moto_proc: MotoProcess, service: Service, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    body, rows, n = big_csv(repeats=150)  # ~20 MB: more than the sockets buffer, so the kill cuts the read
    s3 = moto_proc.client()
    monkeypatch.setattr(aws, "client", lambda name: s3)
    bucket, key = "faults-kill", "incoming/big.csv"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    event = s3_put_event(bucket, key, etag=etag, size=len(body))
    settings = replace(Settings(), output_bucket=bucket, s3_part_bytes=PART)
    service.model.load()

    wires = arm(monkeypatch, after=len(body) // 3, fire=moto_proc.kill)
    with pytest.raises(NETWORK_ERRORS):
        s3_source.handle_event(event, lambda_context, service, settings)
    assert moto_proc.kills == 1 and wires[0].read_bytes < len(body), "the server was not killed mid-read"

    # Lambda retries the event once S3 answers again; S3 keeps its objects, moto does not: put them back.
    moto_proc.start()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    monkeypatch.undo()
    monkeypatch.setattr(aws, "client", lambda name: s3)
    s3_source.handle_event(event, lambda_context, service, settings)
    assert_one_complete_output(s3, bucket, key, n, service, rows)


def test_s3_endpoint_dark_mid_read_leaves_nothing_complete_and_the_retry_writes_one_complete_output(
    moto_proc: MotoProcess,
    proxied_moto: CuttableProxy,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    body, rows, n = big_csv(repeats=150)
    direct = moto_proc.client()  # the test's own view of S3, past the proxy
    through = fast_client(proxied_moto.endpoint)  # the function's, through the proxy that will go dark
    monkeypatch.setattr(aws, "client", lambda name: through)
    bucket, key = "faults-dark", "incoming/big.csv"
    direct.create_bucket(Bucket=bucket)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=direct.head_object(Bucket=bucket, Key=key)["ETag"], size=len(body))
    settings = replace(Settings(), output_bucket=bucket, s3_part_bytes=PART)
    service.model.load()

    wires = arm(monkeypatch, after=len(body) // 4, fire=proxied_moto.cut)
    with pytest.raises(NETWORK_ERRORS):
        s3_source.handle_event(event, lambda_context, service, settings)
    assert proxied_moto.cuts == 1 and wires[0].read_bytes < len(body)
    assert_nothing_complete(direct, bucket, key, n)

    _restore(proxied_moto)
    monkeypatch.undo()
    monkeypatch.setattr(aws, "client", lambda name: through)
    s3_source.handle_event(event, lambda_context, service, settings)
    # An upload the cut left open could not be aborted by the failed attempt (S3 was dark): the retry, taking
    # over the lease, aborts it (test_s3_killed.py makes one for sure); readers see the one complete output.
    assert not direct.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the retry left the orphan upload open"
    assert_one_complete_output(direct, bucket, key, n, service, rows)


@pytest.mark.parametrize(
    ("operation", "which"),
    [
        ("UploadPart", ".csv"),
        ("CompleteMultipartUpload", ".csv"),
        ("PutObject", ".errors.jsonl"),
        ("PutObject", ".done.json"),
    ],
    ids=["predictions_part", "predictions_complete", "errors_object", "marker"],
)
def test_a_refused_output_write_fails_the_event_and_the_retry_writes_one_complete_output(
    operation: str,
    which: str,
    s3: Any,
    bucket: str,
    service: Service,
    settings: Settings,
    lambda_context: Any,
) -> None:
    body, rows, n = big_csv(repeats=120)  # predictions (~26 bytes a row) over one 5 MiB part: a real multipart upload
    key = "incoming/refused.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=s3.head_object(Bucket=bucket, Key=key)["ETag"], size=len(body))
    refused: list[str] = []

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").endswith("refused.csv" + which):
            refused.append(params["Key"])
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, operation
            )

    hook = f"before-parameter-build.s3.{operation}"
    s3.meta.events.register(hook, deny)
    try:
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            s3_source.handle_event(event, lambda_context, service, settings)
    finally:
        s3.meta.events.unregister(hook, deny)
    assert refused, f"the fault was not injected: no {operation} of *{which}"
    assert_nothing_complete(s3, bucket, key, n)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "a failed attempt left an upload open"

    s3_source.handle_event(event, lambda_context, service, settings)  # permission restored: Lambda's retry
    assert_one_complete_output(s3, bucket, key, n, service, rows)


def test_a_replaced_source_whose_new_marker_cannot_be_written_leaves_no_stale_done_marker(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    """The old marker must not vouch for outputs that a later, failed run has replaced."""
    key = "incoming/replaced.csv"
    first, second = churn_rows(30, seed=1), churn_rows(40, seed=2)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(first, COLUMNS))
    etag1 = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    s3_source.handle_event(s3_put_event(bucket, key, etag=etag1), lambda_context, service, settings)

    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(second, COLUMNS))
    etag2 = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    marker_key = "predictions/replaced.csv.done.json"
    calls: list[int] = []

    def deny_final_marker(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == marker_key:
            calls.append(1)
            if b'"status": "in_progress"' not in params["Body"]:
                raise botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    s3.meta.events.register("before-parameter-build.s3.PutObject", deny_final_marker)
    try:
        with pytest.raises(botocore.exceptions.ClientError):
            s3_source.handle_event(s3_put_event(bucket, key, etag=etag2), lambda_context, service, settings)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.PutObject", deny_final_marker)
    marker = json.loads(s3.get_object(Bucket=bucket, Key=marker_key)["Body"].read())
    assert marker["status"] != "done", f"the old marker still says done over replaced outputs: {marker}"

    s3_source.handle_event(s3_put_event(bucket, key, etag=etag2), lambda_context, service, settings)
    marker = json.loads(s3.get_object(Bucket=bucket, Key=marker_key)["Body"].read())
    assert (marker["status"], marker["source"]["etag"], marker["predicted"]) == ("done", etag2.strip('"'), 40)
    assert len(read_predictions(s3, bucket, "predictions/replaced.csv.csv")) == 40


@pytest.mark.parametrize("name", ["gone.csv", "gone.jsonl", "gone.npy"])
def test_an_object_deleted_before_it_is_read_fails_and_the_retry_after_it_is_back_writes_one_output(
    name: str, s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(25, seed=5)
    if name.endswith(".csv"):
        body = csv_bytes(rows, COLUMNS)
    elif name.endswith(".jsonl"):
        body = "\n".join(json.dumps(r) for r in rows).encode()
    else:
        buf = io.BytesIO()
        np.save(buf, np.array([[str(r[c]) for c in COLUMNS] for r in rows]))
        body = buf.getvalue()
    key = f"incoming/{name}"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=s3.head_object(Bucket=bucket, Key=key)["ETag"], size=len(body))
    s3.delete_object(Bucket=bucket, Key=key)  # deleted between the notification and the read

    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchKey"):
        s3_source.handle_event(event, lambda_context, service, settings)
    assert outputs(s3, bucket) == {} and not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

    s3.put_object(Bucket=bucket, Key=key, Body=body)  # back (same bytes, same etag) before Lambda's retry
    s3_source.handle_event(event, lambda_context, service, settings)
    assert_one_complete_output(s3, bucket, key, 25, service, rows)


def test_s3_server_killed_between_parquet_row_groups_fails_and_the_retry_writes_one_complete_parquet(
    moto_proc: MotoProcess, service: Service, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from handler.formats import parquet as parquet_chunks

    # Row groups are fetched in spans of ~32 MiB; this small file would be one: a GET per row group here.
    monkeypatch.setattr(parquet_chunks, "SPAN_BYTES", 1)
    rows = churn_rows(2000, seed=21)
    buf = io.BytesIO()
    pq.write_table(pa.table({c: [r[c] for r in rows] for c in COLUMNS}), buf, row_group_size=200)
    body = buf.getvalue()
    s3 = moto_proc.client()
    monkeypatch.setattr(aws, "client", lambda name: s3)
    bucket, key = "faults-parquet", "incoming/lake.parquet"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=s3.head_object(Bucket=bucket, Key=key)["ETag"], size=len(body))
    settings = replace(Settings(), output_bucket=bucket, s3_part_bytes=PART)
    service.model.load()
    ranged: list[str] = []

    def kill_after_a_few_row_groups(params: dict[str, Any], **_: Any) -> None:
        if params.get("Range"):
            ranged.append(params["Range"])
            if len(ranged) == 4:  # the footer, then row groups: killed with most of the file unread
                moto_proc.kill()

    s3.meta.events.register("before-parameter-build.s3.GetObject", kill_after_a_few_row_groups)
    with pytest.raises(NETWORK_ERRORS):
        s3_source.handle_event(event, lambda_context, service, settings)
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", kill_after_a_few_row_groups)
    assert moto_proc.kills == 1 and len(ranged) == 4

    moto_proc.start()  # S3 keeps its objects, moto does not: put them back, as they were
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3_source.handle_event(event, lambda_context, service, settings)
    base = "predictions/lake.parquet"
    got = outputs(s3, bucket)
    assert sorted(got) == [base + ".done.json", base + ".errors.jsonl", base + ".parquet"], sorted(got)
    table = pq.read_table(io.BytesIO(got[base + ".parquet"]))
    assert table.column("row").to_pylist() == list(range(2000)), "a row was lost, duplicated or reordered"
    worst = float(np.max(np.abs(table.column("output_0").to_numpy() - expected_predictions(rows)[:, 0])))
    assert worst <= 1e-5, f"predictions after the retry differ by {worst}"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "a multipart upload was left open"

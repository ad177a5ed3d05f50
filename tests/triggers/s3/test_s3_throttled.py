"""S3 answering 503 SlowDown and 500 InternalError, as it does under load: the reads and writes are retried
by botocore's standard retry, and the job loses and doubles nothing. The errors are made on the client's
side of the wire, in botocore's `before-send` hook (moto's server never throttles): everything after it,
the retry policy and our resumed reads, is what runs in Lambda."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from botocore.awsrequest import AWSResponse

from handler import aws
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.faults import fast_client
from tests.support.moto_s3 import COLUMNS, churn_rows, csv_bytes, expected_predictions, read_jsonl, s3_put_event

ERRORS = {503: "SlowDown", 500: "InternalError"}


class _Raw:
    """The body of a canned answer, as urllib3's response gives it to botocore."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _failing(plan: list[int], match: str) -> Callable[..., AWSResponse | None]:
    """Answer the next calls whose URL holds `match` with the statuses in `plan` (0: let it through)."""

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        if not plan or match not in request.url:
            return None
        status = plan.pop(0)
        if not status:
            return None
        body = f"<Error><Code>{ERRORS[status]}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))

    return before_send


@pytest.mark.parametrize(
    ("operation", "match", "plan"),
    [
        ("GetObject", "incoming/", [503, 503]),  # the input's read, throttled twice
        ("GetObject", ".done.json", [500]),  # the marker's read
        ("UploadPart", "", [0, 503, 500]),  # the second part throttled, then failing once
        ("PutObject", ".checkpoint.json", [503]),  # the lease, the first write
        ("PutObject", ".done.json", [500]),  # the marker, written once at the end
        ("CompleteMultipartUpload", "", [500]),
    ],
    ids=["get_input", "get_marker", "upload_part", "put_lease", "put_marker", "complete"],
)
def test_throttled_and_failing_calls_are_retried_and_no_row_is_lost_or_doubled(
    moto_endpoint: str,
    bucket: str,
    service: Service,
    settings: Settings,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    match: str,
    plan: list[int],
) -> None:
    client = fast_client(moto_endpoint, timeout=10, attempts=5)
    left = list(plan)
    client.meta.events.register(f"before-send.s3.{operation}", _failing(left, match))
    monkeypatch.setattr(aws, "client", lambda name: client)
    n = 600_000  # CSV predictions of under 27 bytes a row: more than two 5 MiB parts
    rows = churn_rows(20_000, seed=4)
    header, _, block = csv_bytes(rows, COLUMNS).partition(b"\n")
    key = "incoming/throttled.csv"
    aws_direct = fast_client(moto_endpoint)
    aws_direct.put_object(Bucket=bucket, Key=key, Body=header + b"\n" + block * (n // len(rows)))

    [marker] = s3_source.handle_event(
        s3_put_event(bucket, key), lambda_context, service, replace(settings, s3_part_bytes=5 << 20)
    )["objects"]

    assert left == [], f"{operation} was not called as often as the plan needs: {left} left"
    assert (marker["status"], marker["rows"], marker["predicted"], marker["errors"]) == ("done", n, n, 0), marker
    body = aws_direct.get_object(Bucket=bucket, Key="predictions/throttled.csv.csv")["Body"].read().decode()
    answered = body.splitlines()[1:]
    assert [int(r.split(",", 1)[0]) for r in answered] == list(range(n)), "a row was lost, doubled or reordered"
    got = np.asarray([float(r.split(",")[1]) for r in answered]).reshape(n // len(rows), len(rows))
    np.testing.assert_allclose(got, np.tile(expected_predictions(rows)[:, 0], (n // len(rows), 1)), atol=1e-5)
    assert read_jsonl(aws_direct, bucket, "predictions/throttled.csv.errors.jsonl") == []
    assert json.loads(aws_direct.get_object(Bucket=bucket, Key="predictions/throttled.csv.done.json")["Body"].read())
    assert not aws_direct.list_multipart_uploads(Bucket=bucket).get("Uploads")

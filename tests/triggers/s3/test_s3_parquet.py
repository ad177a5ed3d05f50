"""Parquet in, Parquet out, against the local S3 server over HTTP: ranged reads, every row once, atomic, repeatable."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.core.service import Service
from handler.s3_objects import ObjectChanged, RangeFile, S3Object
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.moto_s3 import COLUMNS, churn_rows, expected_predictions, read_jsonl, s3_put_event

TOLERANCE = 1e-5


def churn_parquet(rows: list[dict[str, Any]], row_group_size: int | None = None, **extra: Any) -> bytes:
    """Rows as a data lake holds them: typed columns (float64 numbers, strings), in any column order."""
    columns = {name: [r[name] for r in rows] for name in reversed(COLUMNS)}
    buf = io.BytesIO()
    pq.write_table(pa.table({**columns, **extra}), buf, row_group_size=row_group_size)
    return buf.getvalue()


def _run(s3: Any, bucket: str, key: str, body: bytes, service: Service, settings: Settings, ctx: Any) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    (marker,) = s3_source.handle_event(s3_put_event(bucket, key, etag=etag), ctx, service, settings)["objects"]
    out: dict[str, Any] = marker
    return out


def _predictions(s3: Any, bucket: str, key: str) -> pa.Table:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def test_a_parquet_file_is_answered_with_a_parquet_file_of_row_numbers_and_outputs(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    n = 20_000
    rows = churn_rows(n, seed=13)
    small_chunks = replace(settings, s3_chunk_rows=3000)  # chunks cut across row groups of 7,000
    marker = _run(
        s3, bucket, "incoming/lake/part-0.parquet", churn_parquet(rows, 7000), service, small_chunks, lambda_context
    )

    assert (marker["status"], marker["format"], marker["rows"], marker["predicted"], marker["errors"]) == (
        "done",
        "parquet",
        n,
        n,
        0,
    )
    assert marker["outputs"]["predictions"] == "predictions/lake/part-0.parquet.parquet"
    head = s3.head_object(Bucket=bucket, Key=marker["outputs"]["predictions"])
    assert head["ContentType"] == "application/vnd.apache.parquet"
    table = _predictions(s3, bucket, marker["outputs"]["predictions"])
    assert table.schema == pa.schema([("row", pa.int64()), ("output_0", pa.float32())])
    assert table.column("row").to_pylist() == list(range(n))
    got = table.column("output_0").to_numpy().astype(np.float64)
    worst = float(np.max(np.abs(got - expected_predictions(rows)[:, 0])))
    assert worst <= TOLERANCE, f"Parquet predictions differ from training's by up to {worst}"
    assert read_jsonl(s3, bucket, "predictions/lake/part-0.parquet.errors.jsonl") == []


def test_bad_rows_of_a_parquet_file_go_to_the_errors_object_by_row(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(6, seed=2)
    rows[1] = {**rows[1], "age": float("nan")}
    rows[3] = {**rows[3], "contract_type": "weekly"}
    rows[4] = {**rows[4], "total_charges": 3e38}  # float64 holds it; scaled, it is no plausible value
    body = churn_parquet(rows)
    table = pq.read_table(io.BytesIO(body))
    # A null where a number belongs (a missing value in a data lake) is the row's error too.
    ages = table.column("age").to_pylist()
    ages[5] = None
    body_buf = io.BytesIO()
    pq.write_table(table.set_column(table.schema.get_field_index("age"), "age", pa.array(ages, pa.float64())), body_buf)
    marker = _run(s3, bucket, "incoming/bad.parquet", body_buf.getvalue(), service, settings, lambda_context)

    assert (marker["rows"], marker["predicted"], marker["errors"]) == (6, 2, 4)
    assert _predictions(s3, bucket, "predictions/bad.parquet.parquet").column("row").to_pylist() == [0, 2]
    errors = read_jsonl(s3, bucket, "predictions/bad.parquet.errors.jsonl")
    assert [(e["row"], [x["feature"] for x in e["errors"]]) for e in errors] == [
        (1, ["age"]),
        (3, ["contract_type"]),
        (4, ["total_charges"]),
        (5, ["age"]),
    ]
    assert errors[0]["errors"][0]["reason"] == "must be a finite number, got NaN or infinity"
    assert errors[3]["errors"][0]["reason"] == "must be a number, got null"
    assert all("line" not in e for e in errors), "a Parquet row has no line"


def test_a_file_that_is_not_parquet_is_rejected_with_an_empty_parquet_output(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    marker = _run(s3, bucket, "incoming/fake.parquet", b"tenure_months,age\n1,2\n", service, settings, lambda_context)
    assert (marker["status"], marker["rows"], marker["predicted"]) == ("rejected", 0, 0)
    assert _predictions(s3, bucket, "predictions/fake.parquet.parquet").num_rows == 0
    [error] = read_jsonl(s3, bucket, "predictions/fake.parquet.errors.jsonl")
    assert error["row"] is None and error["errors"][0]["reason"].startswith("not a readable Parquet file")


def test_a_parquet_file_missing_a_feature_column_is_rejected_naming_it(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = [{k: v for k, v in r.items() if k != "age"} for r in churn_rows(3)]
    buf = io.BytesIO()
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), buf)
    marker = _run(s3, bucket, "incoming/noage.parquet", buf.getvalue(), service, settings, lambda_context)
    assert marker["status"] == "rejected"
    assert marker["reason"].startswith("the Parquet file lacks feature column(s) age")


def test_a_retried_parquet_event_rewrites_the_same_bytes_and_a_redelivery_is_a_no_op(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/retry.parquet"
    body = churn_parquet(churn_rows(500, seed=4), 128)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=s3.head_object(Bucket=bucket, Key=key)["ETag"])

    def snapshot() -> dict[str, bytes]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="predictions/")["Contents"]]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    s3_source.handle_event(event, lambda_context, service, settings)
    first = snapshot()
    s3_source.handle_event(event, lambda_context, service, settings)
    assert snapshot() == first
    s3.delete_object(Bucket=bucket, Key="predictions/retry.parquet.done.json")
    s3_source.handle_event(event, lambda_context, service, settings)
    assert snapshot() == first, "a retry wrote other bytes"
    assert sorted(first) == [
        "predictions/retry.parquet.done.json",
        "predictions/retry.parquet.errors.jsonl",
        "predictions/retry.parquet.parquet",
    ]


def test_parquet_is_read_in_a_few_ranged_gets_per_row_group_and_only_the_feature_columns(
    s3: Any, bucket: str, service: Service, settings: Settings
) -> None:
    """Random access over S3: the footer, then one coalesced GET per row group, never a whole-object GET."""
    rows = churn_rows(4000, seed=6)
    # A wide column the model does not read (UNKNOWN_FEATURES=ignore): its bytes must not be fetched.
    rng = np.random.default_rng(0)
    notes = [rng.bytes(500).hex() for _ in rows]  # incompressible: 4 MB the reader must skip
    key = "incoming/wide.parquet"
    s3.put_object(Bucket=bucket, Key=key, Body=churn_parquet(rows, 1000, notes=notes))
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    ranges: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: ranges.append(params.get("Range", ""))
    )
    lenient = replace(service, policy=replace(service.policy, unknown_features="ignore"))
    try:
        file = RangeFile(S3Object(s3, bucket, key))
        marker = s3_source.process_object(s3, s3_source.ObjectRef(bucket, key), lenient, settings)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.GetObject")
    assert marker["predicted"] == 4000
    reads = [r for r in ranges if r]  # the marker lookup is a GET without a range
    assert all(r.startswith("bytes=") for r in reads) and len(reads) <= 2 + 4, reads
    fetched = sum(int(b) - int(a) + 1 for a, b in (r.removeprefix("bytes=").split("-") for r in reads))
    assert fetched < size / 4, f"fetched {fetched} of {size} bytes: the unused column was read"
    assert file.size == size


def test_a_parquet_object_replaced_mid_read_fails_the_event_for_lambdas_retry(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    """Every ranged GET is pinned to the ETag read first: two versions are never mixed into one output."""
    key = "incoming/replaced.parquet"
    s3.put_object(Bucket=bucket, Key=key, Body=churn_parquet(churn_rows(3000, seed=1), 1000))
    replaced: list[int] = []

    def replace_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("Range") and "IfMatch" in params and not replaced:
            replaced.append(1)
            s3.meta.events.unregister("before-parameter-build.s3.GetObject", replace_once)
            s3.put_object(Bucket=bucket, Key=key, Body=churn_parquet(churn_rows(10, seed=2)))

    file = RangeFile(S3Object(s3, bucket, key))
    s3.meta.events.register("before-parameter-build.s3.GetObject", replace_once)
    with pytest.raises(ObjectChanged):
        file.read(100)
    assert replaced and file.etag != s3.head_object(Bucket=bucket, Key=key)["ETag"]
    # The event, redelivered by Lambda, reads the new version whole.
    marker = _run(s3, bucket, key, churn_parquet(churn_rows(10, seed=2)), service, settings, lambda_context)
    assert (marker["status"], marker["rows"]) == ("done", 10)
    assert (
        json.loads(s3.get_object(Bucket=bucket, Key="predictions/replaced.parquet.done.json")["Body"].read()) == marker
    )

"""S3-triggered inference against a local S3 server over HTTP: no row lost, outputs atomic and repeatable."""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import replace
from typing import Any

import botocore.exceptions
import numpy as np
import pytest

from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.conftest import load_event
from tests.support.moto_s3 import (
    COLUMNS,
    churn_rows,
    csv_bytes,
    expected_predictions,
    read_jsonl,
    read_predictions,
    s3_put_event,
)

TOLERANCE = 1e-5


def _run(s3: Any, bucket: str, key: str, body: bytes, service: Service, settings: Settings, ctx: Any) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    result = s3_source.handle_event(s3_put_event(bucket, key), ctx, service, settings)
    assert len(result["objects"]) == 1, result
    marker: dict[str, Any] = result["objects"][0]
    return marker


def _outputs(s3: Any, bucket: str, key: str) -> tuple[list[dict], list[dict], dict]:
    base = "predictions/" + key.removeprefix("incoming/")
    marker = json.loads(s3.get_object(Bucket=bucket, Key=base + ".done.json")["Body"].read())
    predictions = read_predictions(s3, bucket, marker["outputs"]["predictions"])
    return predictions, read_jsonl(s3, bucket, base + ".errors.jsonl"), marker


def _assert_predictions(got: list[dict], service: Service, rows: list[dict[str, Any]]) -> None:
    want = expected_predictions(rows)
    have = np.asarray([g["prediction"] for g in got])
    assert have.shape == want.shape, f"{have.shape} predictions, expected {want.shape}"
    worst = float(np.max(np.abs(have - want)))
    assert worst <= TOLERANCE, f"S3 predictions differ from in-process ones by up to {worst}"


@pytest.mark.slow
def test_csv_of_250k_rows_is_predicted_in_order_with_row_numbers(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    # 250k rows: the CSV predictions (about 27 bytes a row) must pass one 5 MiB part, as this test is also about a
    # multipart upload.
    n = 250_000
    rows = churn_rows(n, seed=11)
    body = csv_bytes(rows, list(reversed(COLUMNS)))  # header in another order than training
    service.model.load()  # measure the file, not the first model load
    start = time.perf_counter()
    marker = _run(s3, bucket, "incoming/big/customers.csv", body, service, settings, lambda_context)
    seconds = time.perf_counter() - start
    print(f"\n250k-row CSV ({len(body) / 1e6:.1f} MB) via local S3: {seconds:.2f} s, {n / seconds:,.0f} rows/s")

    preds, errors, stored = _outputs(s3, bucket, "incoming/big/customers.csv")
    assert marker == stored
    assert (marker["status"], marker["format"], marker["rows"], marker["predicted"], marker["errors"]) == (
        "done",
        "csv",
        n,
        n,
        0,
    )
    assert errors == []
    assert [p["row"] for p in preds] == list(range(n))
    assert all(set(p) == {"row", "prediction"} for p in preds)
    _assert_predictions(preds, service, rows)
    # The output was large enough to go up in several parts, and no upload is left open.
    head = s3.head_object(Bucket=bucket, Key="predictions/big/customers.csv.csv")
    assert "-" in head["ETag"], "expected a multipart object"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_bad_rows_go_to_the_errors_object_and_the_others_are_predicted(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    good = churn_rows(8, seed=3)
    header = ",".join(COLUMNS)

    def line(row: dict[str, Any], **change: Any) -> str:
        r = {**row, **change}
        return ",".join(str(r[c]) for c in COLUMNS)

    lines = [
        header,
        line(good[0]),  # row 0
        line(good[1], age="forty"),  # row 1: not a number
        line(good[2]),  # row 2
        "",  # a blank line is not a row
        line(good[3], contract_type="weekly"),  # row 3: unknown category under the strict policy
        line(good[4], monthly_charges="nan", support_calls=""),  # row 4: two problems
        ",".join(["1"] * 5),  # row 5: too few values
        line(good[5], payment_method="crypto"),  # row 6: unseen payment method is encoded as zeros, not an error
        line(good[6], tenure_months=" 12 "),  # row 7: spaces around a number are fine
        line(good[7], total_charges="1e9999"),  # row 8: overflows to inf
    ]
    marker = _run(s3, bucket, "incoming/bad.csv", ("\n".join(lines) + "\n").encode(), service, settings, lambda_context)
    preds, errors, _ = _outputs(s3, bucket, "incoming/bad.csv")

    assert (marker["rows"], marker["predicted"], marker["errors"]) == (9, 4, 5)
    # CSV rows carry no line numbers now (pyarrow does not report where a row starts); rows are still numbered.
    assert [p["row"] for p in preds] == [0, 2, 6, 7]
    assert [e["row"] for e in errors] == [1, 3, 4, 5, 8] and all("line" not in e for e in errors)
    assert sorted([p["row"] for p in preds] + [e["row"] for e in errors]) == list(range(9)), "a row was lost"
    by_row = {e["row"]: e for e in errors}
    assert by_row[1]["errors"][0]["feature"] == "age"
    assert "must be a number" in by_row[1]["errors"][0]["reason"]
    assert "not a known category" in by_row[3]["errors"][0]["reason"]
    assert {e["feature"] for e in by_row[4]["errors"]} == {"monthly_charges", "support_calls"}
    assert by_row[5]["errors"] == [{"feature": None, "reason": "has 5 values but the header has 12 columns"}]
    assert by_row[8]["errors"][0]["feature"] == "total_charges"
    expected_rows = [good[0], good[2], {**good[5], "payment_method": "crypto"}, {**good[6], "tenure_months": 12.0}]
    _assert_predictions(preds, service, expected_rows)


def test_chunk_boundaries_do_not_change_rows_or_predictions(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(1000, seed=5)
    body = csv_bytes(rows, COLUMNS).replace(b"\n", b"\r\n")  # Windows line endings too
    _run(s3, bucket, "incoming/one.csv", body, service, settings, lambda_context)
    _run(s3, bucket, "incoming/many.csv", body, service, replace(settings, s3_chunk_rows=7), lambda_context)
    one, _, _ = _outputs(s3, bucket, "incoming/one.csv")
    many, _, _ = _outputs(s3, bucket, "incoming/many.csv")
    assert [r["row"] for r in many] == list(range(1000))
    np.testing.assert_allclose([r["prediction"] for r in many], [r["prediction"] for r in one], atol=TOLERANCE)
    _assert_predictions(many, service, rows)


def test_url_encoded_key_with_spaces_and_unicode_from_the_sample_event(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    event = load_event("s3_put.json")
    raw_key = event["Records"][0]["s3"]["object"]["key"]
    assert "+" in raw_key and "%C3%A9" in raw_key, "the sample event should carry an encoded key"
    key = "incoming/churn batch/customers été 2026.csv"
    rows = churn_rows(20)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows, COLUMNS))
    event["Records"][0]["s3"]["bucket"]["name"] = bucket

    result = s3_source.handle_event(event, lambda_context, service, settings)

    assert result["objects"][0]["source"]["key"] == key
    preds, errors, _ = _outputs(s3, bucket, key)
    assert len(preds) == 20 and errors == []
    _assert_predictions(preds, service, rows)


def test_eventbridge_object_created_event_is_predicted(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    event = load_event("s3_eventbridge.json")
    key = event["detail"]["object"]["key"]  # not URL-encoded in EventBridge events
    event["detail"]["bucket"]["name"] = bucket
    rows = churn_rows(30, seed=9)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows, COLUMNS))

    result = s3_source.handle_event(event, lambda_context, service, settings)

    assert result["objects"][0]["status"] == "done"
    preds, _, _ = _outputs(s3, bucket, key)
    _assert_predictions(preds, service, rows)


def test_json_lines_of_objects_and_arrays_with_bad_lines(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(4, seed=21)
    shuffled = dict(reversed(list(rows[0].items())))
    lines = [
        json.dumps(shuffled),  # line 1, row 0: named, any key order
        json.dumps([rows[1][c] for c in COLUMNS]),  # row 1: ordered array
        "{not json",  # row 2
        "",  # blank: skipped
        json.dumps({**rows[2], "colour": "red"}),  # line 5, row 3: unknown feature
        json.dumps({k: v for k, v in rows[3].items() if k != "age"}),  # row 4: missing feature
        json.dumps(rows[3]),  # line 7, row 5
    ]
    key = "incoming/requests.jsonl"
    marker = _run(s3, bucket, key, ("\n".join(lines)).encode(), service, settings, lambda_context)
    preds, errors, _ = _outputs(s3, bucket, key)

    assert (marker["rows"], marker["predicted"], marker["errors"]) == (6, 3, 3)
    assert [(p["row"], p["line"]) for p in preds] == [(0, 1), (1, 2), (5, 7)]
    assert [(e["row"], e["line"]) for e in errors] == [(2, 3), (3, 5), (4, 6)]
    assert "not valid JSON" in errors[0]["errors"][0]["reason"]
    assert errors[1]["errors"][0] == {"feature": "colour", "reason": "is not an input of this model"}
    assert errors[2]["errors"][0] == {"feature": "age", "reason": "is missing"}
    _assert_predictions(preds, service, [rows[0], rows[1], rows[3]])


def test_retried_event_gives_identical_outputs_and_no_duplicates(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(300, seed=4)
    body = csv_bytes(rows, COLUMNS) + b"1,2,3\n"
    key = "incoming/retry.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    event = s3_put_event(bucket, key, etag=etag, size=len(body))

    def snapshot() -> dict[str, bytes]:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="predictions/")["Contents"]]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    s3_source.handle_event(event, lambda_context, service, settings)
    first = snapshot()
    # A redelivery of the same event finds the completion marker and leaves everything as is.
    s3_source.handle_event(event, lambda_context, service, settings)
    assert snapshot() == first
    # A retry after a crash before the marker was written recomputes: the same keys, the same bytes.
    s3.delete_object(Bucket=bucket, Key="predictions/retry.csv.done.json")
    s3_source.handle_event(event, lambda_context, service, settings)
    assert snapshot() == first
    assert sorted(first) == [
        "predictions/retry.csv.csv",
        "predictions/retry.csv.done.json",
        "predictions/retry.csv.errors.jsonl",
    ]
    assert len(first["predictions/retry.csv.csv"].splitlines()) == 1 + 300  # the header and a record per row


def test_keys_outside_the_input_prefix_are_ignored(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    for key in ("predictions/x.csv.csv", "other/x.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
        result = s3_source.handle_event(s3_put_event(bucket, key), lambda_context, service, settings)
        assert result["objects"] == [] and result["ignored"][0]["key"] == key
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="predictions/x.csv.csv.")


def test_header_without_every_feature_rejects_the_file_with_the_reason(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(3)
    body = csv_bytes(rows, [c for c in COLUMNS if c != "age"])
    marker = _run(s3, bucket, "incoming/noage.csv", body, service, settings, lambda_context)
    preds, errors, _ = _outputs(s3, bucket, "incoming/noage.csv")
    assert marker["status"] == "rejected" and preds == []
    assert errors[0]["line"] == 1 and "lacks feature column(s) age" in errors[0]["errors"][0]["reason"]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype.hasobject)
    return buf.getvalue()


def test_npy_of_strings_is_predicted_in_training_column_order(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(50, seed=8)
    array = np.array([[str(r[c]) for c in COLUMNS] for r in rows])
    array[10, 4] = "old"  # age
    small_chunks = replace(settings, s3_chunk_rows=16)
    marker = _run(s3, bucket, "incoming/arr.npy", _npy(array), service, small_chunks, lambda_context)
    preds, errors, _ = _outputs(s3, bucket, "incoming/arr.npy")
    assert (marker["rows"], marker["predicted"], marker["errors"]) == (50, 49, 1)
    assert errors == [
        {"row": 10, "errors": [{"feature": "age", "reason": "must be a number, got a string that is not one"}]}
    ]
    assert [p["row"] for p in preds] == [i for i in range(50) if i != 10]
    _assert_predictions(preds, service, rows[:10] + rows[11:])


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.array([[object()] * 12], dtype=object), "needs pickle"),
        (np.zeros((3, 12)), "string feature(s) contract_type"),
        (np.zeros((3, 5)), "must be 2-D with 12 columns"),
    ],
    ids=["object_array", "numeric_array_for_categorical_model", "wrong_width"],
)
def test_npy_that_cannot_be_read_safely_is_rejected(
    array: np.ndarray, reason: str, s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    marker = _run(s3, bucket, "incoming/bad.npy", _npy(array), service, settings, lambda_context)
    _, errors, _ = _outputs(s3, bucket, "incoming/bad.npy")
    assert marker["status"] == "rejected"
    assert reason in errors[0]["errors"][0]["reason"]


def test_a_failed_output_write_raises_so_lambda_retries_and_publishes_nothing(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/nowhere.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(churn_rows(5), COLUMNS))
    missing = replace(settings, output_bucket=bucket + "-missing")
    with pytest.raises(botocore.exceptions.ClientError):
        s3_source.handle_event(s3_put_event(bucket, key), lambda_context, service, missing)
    # The retry, once the destination exists, produces the complete output.
    s3.create_bucket(Bucket=missing.output_bucket)
    s3_source.handle_event(s3_put_event(bucket, key), lambda_context, service, missing)
    assert len(read_predictions(s3, bucket + "-missing", "predictions/nowhere.csv.csv")) == 5


class ArrowPeak:
    """The largest pyarrow allocation seen while running: pyarrow's buffers are outside tracemalloc's view."""

    def __init__(self) -> None:
        import pyarrow as pa

        self._allocated = pa.total_allocated_bytes
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.0005):
            self.peak = max(self.peak, self._allocated())

    def __enter__(self) -> ArrowPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_memory_does_not_grow_with_the_file_size(
    fmt: str, moto_process_s3: Any, service: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peak memory for 300k vs 1.5M rows: tracemalloc's (Python and numpy) plus pyarrow's pool, sampled.

    Both CSV files span many of pyarrow's 4 MiB blocks: the reader keeps a few blocks in flight, so
    a file of one or two blocks would peak lower than any larger one, which is not growth. Parquet is
    read in spans of row groups of about 32 MiB, more than these files hold: the span is 1 MiB here,
    so that what is bounded is seen (the 10M-row figure in `make bench` is with the 32 MiB span).
    S3 runs in another process here, so the peak is ours alone. TensorFlow's own allocations are
    not traced, but they depend on the chunk size, not the file.
    """
    import tracemalloc

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from handler.formats import parquet as parquet_chunks

    monkeypatch.setattr(parquet_chunks, "SPAN_BYTES", 1 << 20)
    s3 = moto_process_s3
    bucket = "skewless-memory"
    s3.create_bucket(Bucket=bucket)
    service.model.load()
    header, _, block = csv_bytes(churn_rows(20_000, seed=3), COLUMNS).partition(b"\n")
    peaks = {}
    for n in (300_000, 1_500_000):
        key = f"incoming/mem-{n}.{fmt}"
        body = header + b"\n" + block * (n // 20_000)
        if fmt == "parquet":
            buf = io.BytesIO()
            pq.write_table(pacsv.read_csv(io.BytesIO(body)), buf, row_group_size=65536)
            body = buf.getvalue()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        size = len(body)
        del body
        ref = s3_source.ObjectRef(bucket, key)
        pa.default_memory_pool().release_unused()
        tracemalloc.start()
        try:
            with ArrowPeak() as arrow:
                marker = s3_source.process_object(s3, ref, service, replace(settings, output_bucket=bucket))
            traced = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        peaks[n] = traced + arrow.peak
        assert marker["predicted"] == n
        print(
            f"\n{fmt}, {n} rows ({size / 1e6:.1f} MB): peak {traced / 1e6:.1f} MB traced, "
            f"{arrow.peak / 1e6:.1f} MB arrow"
        )
    # 5x the rows: a buffering implementation would peak ~5x higher; allow generous noise.
    assert peaks[1_500_000] < 1.3 * peaks[300_000], f"peak memory grew with the file: {peaks}"


def test_an_object_deleted_before_it_is_read_fails_the_event_and_writes_nothing(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchKey"):
        s3_source.handle_event(s3_put_event(bucket, "incoming/gone.csv"), lambda_context, service, settings)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="predictions/")
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

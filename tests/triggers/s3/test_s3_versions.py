"""Nothing lost, nothing doubled, whatever S3 does: objects replaced mid-read, events out of order, empty objects,
resets mid-body, keys that would collide or are too long. Against the local S3 server (moto, over HTTP); each
test counts the rows in, the rows answered, the rows in errors and the duplicates, and fails on any loss or
duplicate. Expected answers are the model's own on rows built here (tests.support.reference), never the job's."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler import aws
from handler.core.service import Service
from handler.s3_objects import S3Object
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from handler.triggers.s3.event import newer
from tests.support.faults import MotoProcess, ResettingProxy, fast_client
from tests.support.moto_s3 import COLUMNS, churn_rows, csv_bytes, expected_predictions, read_predictions, s3_put_event


def _event(s3: Any, bucket: str, key: str, sequencer: str) -> dict[str, Any]:
    event = s3_put_event(bucket, key, etag=s3.head_object(Bucket=bucket, Key=key)["ETag"])
    event["Records"][0]["s3"]["object"]["sequencer"] = sequencer
    return event


def _marker(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key="predictions/" + key.removeprefix("incoming/") + ".done.json")["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    found: dict[str, Any] = json.loads(body.read())
    return found


def _accounted(s3: Any, bucket: str, key: str, n_in: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every input row answered or in errors, exactly once, and the marker's counts agree: (answers, errors)."""
    base = "predictions/" + key.removeprefix("incoming/")
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=base + ".parquet")["Body"].read()))
        answers = table.to_pylist()
    else:
        suffix = ".csv" if key.endswith(".csv") else ".jsonl"
        answers = read_predictions(s3, bucket, base + suffix) if n_in else []
    errors_body = s3.get_object(Bucket=bucket, Key=base + ".errors.jsonl")["Body"].read().decode()
    errors = [json.loads(line) for line in errors_body.splitlines() if line]
    rows = [int(a["row"]) for a in answers] + [int(e["row"]) for e in errors if e["row"] is not None]
    assert sorted(rows) == list(range(n_in)), f"rows lost or doubled: {len(rows)} rows for {n_in} in"
    marker = _marker(s3, bucket, key)
    assert marker is not None and marker["status"] == "done", marker
    assert (marker["rows"], marker["predicted"], marker["errors"]) == (n_in, len(answers), len(errors)), marker
    return answers, errors


def test_sequencers_compare_as_s3_documents_them() -> None:
    # Hand-written: S3's sequencers are hexadecimal strings of different lengths, right-padded before comparing.
    assert newer("0055AED6DCD90281E6", "0055AED6DCD90281E5")
    assert newer("0055AED6DCD90281E5", "0055AED6DCD90281")  # the shorter one is ...E50 padded: E5 > 00
    assert not newer("0055AED6DCD90281E5", "0055AED6DCD90281E5")
    assert newer("1", "") and not newer("", "1")


def test_a_csv_replaced_between_two_events_is_predicted_once_per_version_whatever_order_they_come_in(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/two-versions.csv"
    old_rows, new_rows = churn_rows(400, seed=1), churn_rows(250, seed=2)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(old_rows, COLUMNS))
    old_event = _event(s3, bucket, key, "0055AED6DCD90281E5")
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(new_rows, COLUMNS))
    new_event = _event(s3, bucket, key, "0055AED6DCD90281F0")
    # The newer version's event arrives first, then the older one's (S3 delivers in any order).
    s3_source.handle_event(new_event, lambda_context, service, settings)
    late = s3_source.handle_event(old_event, lambda_context, service, settings)
    assert late["objects"][0]["status"] == "superseded", late
    answers, errors = _accounted(s3, bucket, key, len(new_rows))
    assert errors == [] and np.allclose([a["prediction"] for a in answers], expected_predictions(new_rows), atol=1e-5)
    marker = _marker(s3, bucket, key)
    assert marker is not None and marker["source"]["sequencer"] == "0055AED6DCD90281F0"
    assert marker["source"]["etag"] == new_event["Records"][0]["s3"]["object"]["eTag"].strip('"')


def test_an_older_versions_event_never_replaces_a_newer_versions_results_even_after_they_exist(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/in-order.csv"
    rows_a, rows_b = churn_rows(120, seed=3), churn_rows(80, seed=4)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows_a, COLUMNS))
    event_a = _event(s3, bucket, key, "00A0")
    s3_source.handle_event(event_a, lambda_context, service, settings)
    _accounted(s3, bucket, key, len(rows_a))
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows_b, COLUMNS))
    s3_source.handle_event(_event(s3, bucket, key, "00B0"), lambda_context, service, settings)
    _accounted(s3, bucket, key, len(rows_b))  # a newer version always gets its own results
    again = s3_source.handle_event(event_a, lambda_context, service, settings)  # A redelivered, late
    assert again["objects"][0]["status"] == "superseded"
    _accounted(s3, bucket, key, len(rows_b))


def test_while_one_version_is_predicted_another_versions_event_waits_for_lambdas_retry(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/held.csv"
    rows = churn_rows(60, seed=5)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows, COLUMNS))
    lease = {
        "status": "in_progress",
        "source": {"bucket": bucket, "key": key, "etag": "0" * 32, "sequencer": "0010"},
        "model": {"name": "churn", "version": "1"},
        "lease_until": 4102444800,  # 2100: held by another invocation, for an older version ("0010" < "0020")
    }
    lease_key = "predictions/held.csv.checkpoint.json"
    s3.put_object(Bucket=bucket, Key=lease_key, Body=json.dumps(lease).encode())
    with pytest.raises(s3_source.OtherVersionInProgress):
        s3_source.handle_event(_event(s3, bucket, key, "0020"), lambda_context, service, settings)
    assert _marker(s3, bucket, key) is None
    lease["lease_until"] = 1  # the holder died: its lease ran out
    s3.put_object(Bucket=bucket, Key=lease_key, Body=json.dumps(lease).encode())
    s3_source.handle_event(_event(s3, bucket, key, "0020"), lambda_context, service, settings)  # Lambda's retry
    _accounted(s3, bucket, key, len(rows))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=lease_key), "the lease was not given up"


def _digits_npy(n: int, seed: int) -> bytes:
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
    out = io.BytesIO()
    np.save(out, images)
    return out.getvalue()


def test_an_npy_replaced_between_its_header_and_its_body_loses_no_rows(
    s3: Any, bucket: str, digits_service: Service, settings: Settings, lambda_context: Any
) -> None:
    """The body read is pinned to the header read's version: the job stops, and the new version's event reads it."""
    key = "incoming/images.npy"
    s3.put_object(Bucket=bucket, Key=key, Body=_digits_npy(1500, seed=1))
    old_event = _event(s3, bucket, key, "0001")
    new_body = _digits_npy(1000, seed=2)
    replaced: list[int] = []

    def replace_after_the_header(params: dict[str, Any], **_: Any) -> None:
        rng = str(params.get("Range", ""))
        if params.get("Key") == key and rng.startswith("bytes=") and not rng.startswith("bytes=0-") and not replaced:
            replaced.append(1)  # the header read went through; the object changes before the body read
            s3.meta.events.unregister("before-parameter-build.s3.GetObject", replace_after_the_header)
            s3.put_object(Bucket=bucket, Key=key, Body=new_body)

    s3.meta.events.register("before-parameter-build.s3.GetObject", replace_after_the_header)
    try:
        first = s3_source.handle_event(old_event, lambda_context, digits_service, settings)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.GetObject", replace_after_the_header)
    assert replaced and first["objects"][0]["status"] == "superseded", first
    assert _marker(s3, bucket, key) is None, "a marker vouches for rows read from two versions"
    s3_source.handle_event(_event(s3, bucket, key, "0002"), lambda_context, digits_service, settings)
    _accounted(s3, bucket, key, 1000)


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "npy"])
def test_an_empty_object_of_any_format_is_done_with_no_rows(
    fmt: str, s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = f"incoming/empty.{fmt}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    result = s3_source.handle_event(_event(s3, bucket, key, "01"), lambda_context, service, settings)
    marker = result["objects"][0]
    assert (marker["status"], marker["rows"], marker["predicted"], marker["errors"]) == ("done", 0, 0, 0), marker
    assert _marker(s3, bucket, key) == marker
    # Delivered again: the same answer, no exception (an empty object used to fail on every delivery).
    again = s3_source.handle_event(_event(s3, bucket, key, "01"), lambda_context, service, settings)
    assert again["objects"][0] == marker


def test_a_file_refused_whole_counts_its_one_error_in_the_marker(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/no-features.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"colour,size\nred,3\n")
    marker = s3_source.handle_event(_event(s3, bucket, key, "01"), lambda_context, service, settings)["objects"][0]
    assert (marker["status"], marker["rows"], marker["predicted"], marker["errors"]) == ("rejected", 0, 0, 1)
    body = s3.get_object(Bucket=bucket, Key="predictions/no-features.csv.errors.jsonl")["Body"].read()
    assert len(body.splitlines()) == marker["errors"]


def test_input_keys_whose_outputs_would_land_on_anothers_are_refused_with_the_reason(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    good, clash = "incoming/a.csv", "incoming/a.csv.errors"
    s3.put_object(Bucket=bucket, Key=good, Body=b"tenure_months\n")  # refused whole: one error record
    s3_source.handle_event(_event(s3, bucket, good, "01"), lambda_context, service, settings)
    errors_before = s3.get_object(Bucket=bucket, Key="predictions/a.csv.errors.jsonl")["Body"].read()
    s3.put_object(Bucket=bucket, Key=clash, Body=b'{"x": 1}\n')
    result = s3_source.handle_event(_event(s3, bucket, clash, "01"), lambda_context, service, settings)
    assert result["objects"] == [] and len(result["ignored"]) == 1, result
    assert "ends with '.errors'" in result["ignored"][0]["reason"], result
    assert s3.get_object(Bucket=bucket, Key="predictions/a.csv.errors.jsonl")["Body"].read() == errors_before

    capturing = replace(settings, capture_s3_uri=f"s3://{bucket}/predictions/capture/")
    key = "incoming/capture/looks-captured.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    result = s3_source.handle_event(_event(s3, bucket, key, "01"), lambda_context, service, capturing)
    assert result["objects"] == [] and "captured traffic" in result["ignored"][0]["reason"], result


def test_a_key_too_long_for_s3_once_suffixed_is_shortened_the_same_way_every_time(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    key = "incoming/" + "é" * 10 + "x" * 990 + ".csv"  # 1,023 bytes: S3 takes it, not under predictions/ + a suffix
    rows = churn_rows(30, seed=6)
    s3.put_object(Bucket=bucket, Key=key, Body=csv_bytes(rows, COLUMNS))
    runs = [s3_source.handle_event(_event(s3, bucket, key, "01"), lambda_context, service, settings) for _ in "ab"]
    marker = runs[0]["objects"][0]
    assert runs[1]["objects"][0] == marker, "the second delivery is a no-op that answers the same marker"
    outputs = marker["outputs"]
    assert marker["source"]["key"] == key and marker["predicted"] == 30, marker
    for name in ("predictions", "errors"):
        assert len(outputs[name].encode()) <= 1024 and "~" in outputs[name], outputs
        head = s3.head_object(Bucket=bucket, Key=outputs[name])
        assert head["Metadata"]["source-key"].startswith("incoming/%C3%A9"), head["Metadata"]
    answers = read_predictions(s3, bucket, outputs["predictions"])
    assert [a["row"] for a in answers] == list(range(30))


def test_a_connection_reset_mid_body_is_read_on_from_the_byte_it_reached(
    moto_proc: MotoProcess,
    resetting_moto: ResettingProxy,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    """A reset in the middle of a GET: the read resumes with a ranged GET pinned to the version, and the job ends."""
    direct = moto_proc.client()
    through = fast_client(resetting_moto.endpoint, timeout=10)
    monkeypatch.setattr(aws, "client", lambda name: through)
    bucket, key = "resets", "incoming/big.csv"
    rows = churn_rows(2000, seed=7)
    body = csv_bytes(rows, COLUMNS)  # ~160 KB
    direct.create_bucket(Bucket=bucket)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    ranges: list[tuple[str, str]] = []
    through.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: ranges.append((str(params.get("Range", "")), str(params.get("IfMatch", "")))),
    )
    resetting_moto.arm(after_bytes=len(body) // 2)
    settings = replace(Settings(), output_bucket=bucket)
    result = s3_source.handle_event(_event(direct, bucket, key, "01"), lambda_context, service, settings)
    assert resetting_moto.resets == 1, "the fault was not injected"
    assert result["objects"][0]["status"] == "done", result
    _accounted(direct, bucket, key, len(rows))
    resumed = [(r, m) for r, m in ranges if r.startswith("bytes=") and not r.startswith("bytes=0-")]
    assert resumed and all(m for _, m in resumed), f"no pinned ranged GET resumed the read: {ranges}"


def test_a_reset_in_a_ranged_parquet_read_is_read_again_not_the_whole_invocation(
    moto_proc: MotoProcess,
    resetting_moto: ResettingProxy,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    direct = moto_proc.client()
    through = fast_client(resetting_moto.endpoint, timeout=10)
    monkeypatch.setattr(aws, "client", lambda name: through)
    bucket, key = "resets-parquet", "incoming/big.parquet"
    rows = churn_rows(3000, seed=8)
    body = _parquet([{c: r[c] for c in COLUMNS} for r in rows])
    direct.create_bucket(Bucket=bucket)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    obj = S3Object(through, bucket, key)
    resetting_moto.arm(after_bytes=len(body) // 3)
    assert obj.seekable().read() == body  # the whole object through one reset, every byte right
    assert resetting_moto.resets == 1 and obj.resumed >= 1
    resetting_moto.arm(after_bytes=len(body) // 3)
    result = s3_source.handle_event(
        _event(direct, bucket, key, "01"), lambda_context, service, replace(Settings(), output_bucket=bucket)
    )
    assert result["objects"][0]["status"] == "done" and resetting_moto.resets == 2, result
    _accounted(direct, bucket, key, len(rows))


@pytest.fixture
def digits_service() -> Service:
    from handler.bootstrap import open_service
    from tests.support import zoo

    return open_service(Settings(model_dir=zoo.model_dir("digits"), serving_runtime="litert"))


def test_a_marker_changed_since_it_was_read_is_never_overwritten(s3: Any, bucket: str) -> None:
    """S3's conditional writes: a stale read's write raises MarkerTaken, and the newer content stays."""
    from handler.triggers.s3.marker import MarkerTaken, read_marker, write_marker

    key = "predictions/race.csv.done.json"
    empty = read_marker(s3, bucket, key)
    mine = write_marker(s3, bucket, key, {"status": "in_progress", "who": "first"}, empty)
    with pytest.raises(MarkerTaken):
        write_marker(s3, bucket, key, {"status": "in_progress", "who": "second"}, empty)  # it existed already
    theirs = write_marker(s3, bucket, key, {"status": "done", "who": "third"}, mine)
    with pytest.raises(MarkerTaken):
        write_marker(s3, bucket, key, {"status": "done", "who": "stale"}, mine)  # read before "third" wrote
    assert read_marker(s3, bucket, key).body == {"status": "done", "who": "third"} == theirs.body

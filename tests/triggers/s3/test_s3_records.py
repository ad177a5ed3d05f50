"""Every refusal recorded, through the S3 path (moto's server over HTTP): a row too long to parse costs only
itself, gzipped CSV and JSON Lines are read as their plain files are, and a gzip the path cannot read is a
file-level record, never an empty answer that says nothing. Each test counts rows in, answered and refused."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.moto_s3 import COLUMNS, churn_rows, csv_bytes, expected_predictions, read_jsonl, s3_put_event


def _run(s3: Any, bucket: str, key: str, body: bytes, service: Service, settings: Settings, ctx: Any) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    [marker] = s3_source.handle_event(s3_put_event(bucket, key), ctx, service, settings)["objects"]
    return dict(marker)


def _get(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def _counts(marker: dict[str, Any]) -> tuple[Any, ...]:
    return marker["status"], marker["rows"], marker["predicted"], marker["errors"]


def test_a_20_mb_csv_line_costs_its_own_row_and_the_other_20000_are_answered(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(20_000, seed=5)
    plain = csv_bytes(rows, COLUMNS)
    header, _, body = plain.partition(b"\n")
    lines = body.splitlines(keepends=True)
    long_line = b",".join([b"x" * (20 << 20)] * len(COLUMNS)) + b"\n"
    marker = _run(
        s3, bucket, "incoming/long.csv", header + b"\n" + b"".join([*lines[:7_000], long_line, *lines[7_000:]]),
        service, settings, lambda_context,
    )  # fmt: skip
    assert _counts(marker) == ("done", 20_001, 20_000, 1), marker
    [error] = read_jsonl(s3, bucket, "predictions/long.csv.errors.jsonl")
    assert error["row"] == 7_000 and "is longer than 4 MiB" in error["errors"][0]["reason"], error
    answered = _get(s3, bucket, "predictions/long.csv.csv").decode().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in answered] == [*range(7_000), *range(7_001, 20_001)]
    got = np.asarray([float(r.split(",")[1]) for r in answered])
    np.testing.assert_allclose(got, expected_predictions(rows)[:, 0], atol=1e-5)


def test_gzipped_csv_and_json_lines_are_answered_as_their_plain_files_are(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    rows = churn_rows(3_000, seed=8)
    rows[17] = {**rows[17], "contract_type": "lifetime"}  # one refused row, numbered the same in both
    csv_plain = csv_bytes(rows, COLUMNS)
    jsonl_plain = "".join(json.dumps(r) + "\n" for r in rows).encode()
    for name, plain in (("rows.csv", csv_plain), ("rows.jsonl", jsonl_plain)):
        suffix = ".csv" if name.endswith(".csv") else ".jsonl"
        want = _run(s3, bucket, f"incoming/{name}", plain, service, settings, lambda_context)
        got = _run(s3, bucket, f"incoming/{name}.gz", gzip.compress(plain), service, settings, lambda_context)
        assert _counts(got) == _counts(want) == ("done", 3_000, 2_999, 1), (got, want)
        assert got["format"] == want["format"]
        # The same answers and the same refusals, byte for byte.
        assert _get(s3, bucket, f"predictions/{name}.gz{suffix}") == _get(s3, bucket, f"predictions/{name}{suffix}")
        errors = _get(s3, bucket, f"predictions/{name}.gz.errors.jsonl")
        assert errors == _get(s3, bucket, f"predictions/{name}.errors.jsonl") and json.loads(errors)["row"] == 17


def test_a_gzip_that_cannot_be_read_is_a_file_level_record_with_the_reason(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    plain = csv_bytes(churn_rows(500, seed=9), COLUMNS)
    table = pa.table({c: [r[c] for r in churn_rows(10, seed=9)] for c in COLUMNS})
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    cases = {
        "not_gzip.csv.gz": (plain, "the file is not valid gzip"),
        "cut_short.csv.gz": (gzip.compress(plain)[:-100], "the file is not valid gzip"),
        "table.parquet.gz": (gzip.compress(parquet.getvalue()), ".parquet.gz is not read: Parquet compresses"),
        "array.npy.gz": (gzip.compress(b"\x93NUMPY"), ".npy.gz is not read: a .npy is read by byte ranges"),
    }
    for name, (body, reason) in cases.items():
        marker = _run(s3, bucket, f"incoming/{name}", body, service, settings, lambda_context)
        assert _counts(marker) == ("rejected", 0, 0, 1), (name, marker)
        assert marker["reason"].startswith(reason), (name, marker["reason"])
        [record] = read_jsonl(s3, bucket, f"predictions/{name}.errors.jsonl")
        assert record["errors"][0]["reason"] == marker["reason"], record

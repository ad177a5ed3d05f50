"""Every reference model through S3 (JSON Lines, .npy, CSV) and SQS, against the local S3/SQS server.

The expected values are the committed golden cases: each golden request's rows become lines of a
file (or one message), and each answer must be training's output for that row.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers import sqs as sqs_source
from handler.triggers.s3 import job as s3_source
from tests.support import zoo
from tests.support.moto_s3 import churn_rows, read_jsonl, s3_put_event
from tests.triggers.test_sqs import _s3_result, sqs_event


@pytest.fixture(scope="module", params=zoo.MODELS)
def model(request: pytest.FixtureRequest) -> tuple[str, Service]:
    name = str(request.param)
    return name, open_service(Settings(model_dir=zoo.model_dir(name)))


def _row_cases(name: str) -> list[dict[str, Any]]:
    return [c for c in zoo.cases(name) if "instances" in c["request"]]


def _run(s3: Any, bucket: str, key: str, body: bytes, service: Service, settings: Settings, ctx: Any) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    (marker,) = s3_source.handle_event(s3_put_event(bucket, key), ctx, service, settings)["objects"]
    out: dict[str, Any] = marker
    return out


def _split(predictions: list[dict[str, Any]], cases: list[dict[str, Any]]) -> list[list[Any]]:
    """The file's answers, back into one list per golden case (rows were written case after case)."""
    it = iter(p["prediction"] for p in predictions)
    return [[next(it) for _ in c["request"]["instances"]] for c in cases]


def test_every_golden_row_through_s3_json_lines(
    model: tuple[str, Service], s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    name, service = model
    cases = _row_cases(name)
    lines = [json.dumps(row) for c in cases for row in c["request"]["instances"]]
    marker = _run(s3, bucket, f"incoming/{name}.jsonl", "\n".join(lines).encode(), service, settings, lambda_context)
    assert (marker["status"], marker["rows"], marker["errors"]) == ("done", len(lines), 0), marker
    predictions = read_jsonl(s3, bucket, f"predictions/{name}.jsonl.jsonl")
    assert [p["row"] for p in predictions] == list(range(len(lines)))
    for case, answers in zip(cases, _split(predictions, cases), strict=True):
        zoo.check_v1(name, case, {"predictions": answers}, "S3 JSON Lines")


def test_every_golden_request_through_sqs(
    model: tuple[str, Service], s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    name, service = model
    cases = zoo.cases(name)
    ids = [f"{name}-{i}" for i in range(len(cases))]
    bodies = [json.dumps({"request_id": rid, **c["request"]}) for rid, c in zip(ids, cases, strict=True)]
    result = sqs_source.handle_event(sqs_event(bodies), lambda_context, service, settings)
    assert result == {"batchItemFailures": []}
    for rid, case in zip(ids, cases, strict=True):
        got = _s3_result(s3, bucket, rid)
        assert (got.pop("request_id"), got.pop("model")) == (rid, name) and got.pop("version") and got.pop("result_id")
        assert got.pop("inference_id") == rid
        zoo.check_v1(name, case, got, "SQS")


@pytest.mark.parametrize("name", ["digits", "sensor"])
def test_one_array_models_take_npy_files(
    name: str, s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    service = open_service(Settings(model_dir=zoo.model_dir(name)))
    cases = [c for c in _row_cases(name) if all(isinstance(r, list) for r in c["request"]["instances"])]
    dtype = np.uint8 if name == "digits" else np.float32
    array = np.concatenate([np.asarray(c["request"]["instances"], dtype=dtype) for c in cases])
    buf = io.BytesIO()
    np.save(buf, array)
    small = replace(settings, s3_chunk_rows=3)  # several chunks
    marker = _run(s3, bucket, f"incoming/{name}.npy", buf.getvalue(), service, small, lambda_context)
    assert (marker["status"], marker["predicted"], marker["errors"]) == ("done", len(array), 0), marker
    predictions = read_jsonl(s3, bucket, f"predictions/{name}.npy.jsonl")
    for case, answers in zip(cases, _split(predictions, cases), strict=True):
        zoo.check_v1(name, case, {"predictions": answers}, "S3 .npy")


def test_csv_for_a_model_with_array_inputs_is_rejected_with_what_to_send(
    s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    service = open_service(Settings(model_dir=zoo.model_dir("digits")))
    marker = _run(s3, bucket, "incoming/images.csv", b"image\n1\n", service, settings, lambda_context)
    errors = read_jsonl(s3, bucket, "predictions/images.csv.errors.jsonl")
    assert marker["status"] == "rejected" and marker["predicted"] == 0
    reason = errors[0]["errors"][0]["reason"]
    assert "image (uint8 [28, 28, 1])" in reason and "JSON Lines" in reason


def test_bad_rows_of_a_zoo_model_are_listed_with_their_reasons(
    s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    service = open_service(Settings(model_dir=zoo.model_dir("recommender")))
    good = zoo.cases("recommender")[0]["request"]["instances"][0]
    rows = [good, {**good, "item_id": 200}, {**good, "item_id": 1.5}, {**good, "user_features": [0.0] * 5}, good]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    marker = _run(s3, bucket, "incoming/rec.jsonl", body, service, settings, lambda_context)
    assert (marker["rows"], marker["predicted"], marker["errors"]) == (5, 2, 3)
    errors = {e["row"]: e["errors"][0] for e in read_jsonl(s3, bucket, "predictions/rec.jsonl.errors.jsonl")}
    # Written by hand: the reasons values.py gives, naming the input and never the value.
    assert errors[1] == {"feature": "item_id", "reason": "is an id outside this input's range 0..199"}
    assert errors[2] == {"feature": "item_id", "reason": "must be an integer for int32, got a fraction"}
    assert errors[3] == {"feature": "user_features", "reason": "has 5 entries on axis 1, expected 6"}
    assert [p["row"] for p in read_jsonl(s3, bucket, "predictions/rec.jsonl.jsonl")] == [0, 4]


@pytest.mark.parametrize(
    ("feature", "value", "code", "where", "reason"),
    [
        # float32 cannot hold it: the feature is named.
        ("tenure_months", 1e39, "invalid_input", "tenure_months", "is too large for the model: float32 holds"),
        ("total_charges", 1e300, "invalid_input", "total_charges", "is too large for the model: float32 holds"),
        # float32 holds it, but scaled it is 1e35 standard deviations out: no runtime computes with it reliably.
        ("total_charges", 3e38, "invalid_input", "total_charges", "is more than 1e+04 training standard deviations"),
    ],
)
def test_numbers_that_overflow_are_errors_rows_and_error_results_never_nulls(
    feature: str,
    value: float,
    code: str,
    where: str,
    reason: str,
    s3: Any,
    bucket: str,
    settings: Settings,
    lambda_context: Any,
) -> None:
    service = open_service(Settings(model_dir=zoo.model_dir("churn")))
    rows = churn_rows(3, seed=5)
    rows[1] = {**rows[1], feature: value}
    body = "\n".join(json.dumps(r) for r in rows).encode()
    marker = _run(s3, bucket, "incoming/big.jsonl", body, service, settings, lambda_context)
    assert (marker["predicted"], marker["errors"]) == (2, 1)
    (error,) = read_jsonl(s3, bucket, "predictions/big.jsonl.errors.jsonl")
    assert error["row"] == 1 and error["errors"][0]["feature"] == where
    assert error["errors"][0]["reason"].startswith(reason)
    predictions = read_jsonl(s3, bucket, "predictions/big.jsonl.jsonl")
    assert all(np.isfinite(p["prediction"]).all() for p in predictions)
    # The same row as an SQS message: an error result (422), not a null prediction.
    result = sqs_source.handle_event(
        sqs_event([json.dumps({"request_id": "big-1", "instances": [rows[1]]})]), lambda_context, service, settings
    )
    assert result == {"batchItemFailures": []}
    got = _s3_result(s3, bucket, "big-1")
    assert got["code"] == code and "predictions" not in got
    assert got["details"] == [{"instance": 0, "feature": where, "reason": error["errors"][0]["reason"]}]


def _table(rows: list[dict[str, Any]]) -> Any:
    """Golden rows as a Parquet table a data lake would hold: one column per input, lists for arrays; None
    when some column mixes kinds (a string and a number), which Parquet cannot hold in one column."""
    import pyarrow as pa

    try:
        return pa.table({name: pa.array([row[name] for row in rows]) for name in rows[0]})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _answers_of(name: str, table: Any) -> list[Any]:
    """The predictions Parquet back in TF Serving's per-instance layout: a column per output, [v] for shape [1]."""
    outputs = zoo.manifest(name)["signature"]["outputs"]
    per_output = []
    for out in outputs:
        values = table.column(out["name"]).to_pylist()
        per_output.append([[v] for v in values] if out["shape"] == [1] else values)
    if len(outputs) == 1:
        return per_output[0]
    return [dict(zip([o["name"] for o in outputs], vs, strict=True)) for vs in zip(*per_output, strict=True)]


def test_every_golden_row_through_s3_parquet_gives_trainings_answers_in_a_parquet_file(
    model: tuple[str, Service], s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    import pyarrow.parquet as pq

    name, service = model
    checked = 0
    for i, case in enumerate(zoo.cases(name)):
        rows = zoo.named_rows(case)
        table = _table(rows) if rows is not None else None
        if table is None:
            continue
        buf = io.BytesIO()
        pq.write_table(table, buf)
        key = f"incoming/{name}/{i}.parquet"
        marker = _run(s3, bucket, key, buf.getvalue(), service, settings, lambda_context)
        assert (marker["status"], marker["errors"]) == ("done", 0), (case["name"], marker)
        body = s3.get_object(Bucket=bucket, Key=f"predictions/{name}/{i}.parquet.parquet")["Body"].read()
        predictions = pq.read_table(io.BytesIO(body))
        assert predictions.column("row").to_pylist() == list(range(len(rows or [])))
        zoo.check_v1(name, case, {"predictions": _answers_of(name, predictions)}, "S3 Parquet")
        checked += 1
    assert checked, f"no golden case of {name} could be written as Parquet"

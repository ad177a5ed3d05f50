"""A chunk in which every row is refused, against the local S3 server: each of its rows is in the errors
object with its row number, and the done marker counts exactly what the two objects hold.

S3_CHUNK_ROWS is 4, so whole chunks are refused: for JSON Lines, .npy and Parquet the rows 4-7 (a chunk
in the middle) and 12-13 (the last one). A CSV is converted a block at a time and split by its good
rows, so there a chunk has only refused rows when the whole block has (every row refused), or for the
records that cannot be parsed at all (a wrong number of fields) after the last good one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.moto_s3 import (
    COLUMNS,
    churn_rows,
    csv_bytes,
    expected_predictions,
    read_csv_predictions,
    read_jsonl,
    s3_put_event,
)

N = 14
CHUNK_ROWS = 4
MIDDLE_AND_LAST = (4, 5, 6, 7, 12, 13)
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Layout:
    """An input file of N churn rows, which of them are refused, and the feature each error names."""

    suffix: str
    body: Callable[[list[dict[str, Any]]], bytes]
    refused: tuple[int, ...]
    feature: str | None


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    lines = [{**r, "age": "forty"} if i in MIDDLE_AND_LAST else r for i, r in enumerate(rows)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _npy(rows: list[dict[str, Any]]) -> bytes:
    array = np.array([[str(r[c]) for c in COLUMNS] for r in rows])
    array[list(MIDDLE_AND_LAST), COLUMNS.index("age")] = "old"
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    columns = {name: [r[name] for r in rows] for name in COLUMNS}
    columns["age"] = [float("nan") if i in MIDDLE_AND_LAST else a for i, a in enumerate(columns["age"])]
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)  # one row group: chunks of CHUNK_ROWS are cut from it
    return buf.getvalue()


def _csv_every_row_refused(rows: list[dict[str, Any]]) -> bytes:
    return csv_bytes([{**r, "age": "forty"} for r in rows], COLUMNS)


def _csv_malformed_after_the_good_rows(rows: list[dict[str, Any]]) -> bytes:
    return csv_bytes(rows[:4], COLUMNS) + b"1,1,1\n" * (N - 4)


LAYOUTS = {
    "jsonl": Layout(".jsonl", _jsonl, MIDDLE_AND_LAST, "age"),
    "npy": Layout(".npy", _npy, MIDDLE_AND_LAST, "age"),
    "parquet": Layout(".parquet", _parquet, MIDDLE_AND_LAST, "age"),
    "csv_every_row_refused": Layout(".csv", _csv_every_row_refused, tuple(range(N)), "age"),
    "csv_malformed_after_the_good_rows": Layout(".csv", _csv_malformed_after_the_good_rows, tuple(range(4, N)), None),
}


def _predicted(s3: Any, bucket: str, key: str) -> list[tuple[int, float]]:
    """(row, output) of every record of the predictions object, read by its format's own reader."""
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        return list(zip(table.column("row").to_pylist(), table.column("output_0").to_pylist(), strict=True))
    records = read_csv_predictions(s3, bucket, key) if key.endswith(".csv") else read_jsonl(s3, bucket, key)
    return [(r["row"], r["prediction"][0]) for r in records]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_row_of_a_wholly_refused_chunk_is_in_the_errors_object_and_the_marker_agrees(
    layout: str, s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    case = LAYOUTS[layout]
    rows = churn_rows(N, seed=17)
    key = f"incoming/refused/{layout}{case.suffix}"
    s3.put_object(Bucket=bucket, Key=key, Body=case.body(rows))
    small = replace(settings, s3_chunk_rows=CHUNK_ROWS)
    (marker,) = s3_source.handle_event(s3_put_event(bucket, key), lambda_context, service, small)["objects"]

    outputs = marker["outputs"]
    errors = read_jsonl(s3, bucket, outputs["errors"])
    predicted = _predicted(s3, bucket, outputs["predictions"])
    stored = json.loads(
        s3.get_object(Bucket=bucket, Key=f"predictions/refused/{layout}{case.suffix}.done.json")["Body"].read()
    )
    answered = [i for i in range(N) if i not in case.refused]
    what = f"marker {marker}, errors rows {[e.get('row') for e in errors]}, predicted rows {[p[0] for p in predicted]}"

    assert stored == marker, f"the stored marker differs from the one returned: {stored}"
    assert marker["status"] == "done", what
    # Every refused row once, in order, with its number and the feature at fault.
    assert [e["row"] for e in errors] == list(case.refused), what
    for e in errors:
        assert len(e["errors"]) == 1 and e["errors"][0]["feature"] == case.feature and e["errors"][0]["reason"], e
    assert [p[0] for p in predicted] == answered, what
    # The marker counts what the objects hold, and every row of the file is in exactly one of them.
    assert (marker["rows"], marker["predicted"], marker["errors"]) == (N, len(predicted), len(errors)), what
    if answered:
        want = expected_predictions([rows[i] for i in answered])[:, 0]
        got = np.asarray([p[1] for p in predicted])
        assert float(np.max(np.abs(got - want))) <= TOLERANCE, f"{got} != training's {want}"

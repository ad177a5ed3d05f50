"""An ordinary Keras tabular model, not one of ours, through the S3 path from CSV and from Parquet.

The model is what a user writes: features as `Input((1,))` and `Input(())` (a number, a count, a plan
name looked up in the graph by `StringLookup`), and two named outputs, a sigmoid score and a softmax
over three segments. It is exported with `export_model` and served from the export. The reference is
`model.predict` on the same rows built as Keras takes them; the CSV answers are read back with the
standard library, the Parquet ones with pyarrow.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.support.moto_s3 import read_jsonl, s3_put_event

PLANS = ["basic", "pro", "team"]
ROWS = [
    {"age": 31.0, "visits": 4, "plan": "pro"},
    {"age": 58.5, "visits": 0, "plan": "basic"},
    {"age": 22.0, "visits": 17, "plan": "enterprise"},  # not in the vocabulary: StringLookup's OOV slot
    {"age": 44.25, "visits": 2, "plan": "team"},
]


def _model() -> keras.Model:
    age = keras.Input((1,), name="age")
    visits = keras.Input((), name="visits", dtype="int32")
    plan = keras.Input((1,), name="plan", dtype="string")
    one_hot = keras.layers.StringLookup(vocabulary=PLANS, output_mode="one_hot")(plan)
    count = keras.layers.Reshape((1,))(keras.ops.cast(visits, "float32"))
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([age / 100.0, count / 10.0, one_hot]))
    outputs = {
        "churn": keras.layers.Dense(1, activation="sigmoid", name="churn")(x),
        "segment": keras.layers.Dense(3, activation="softmax", name="segment")(x),
    }
    return keras.Model({"age": age, "visits": visits, "plan": plan}, outputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[keras.Model, Service]:
    keras.utils.set_random_seed(3)
    model = _model()
    out = Path(tmp_path_factory.mktemp("tabular")) / "tabular"
    sample = {"instances": [{"age": [31.0], "visits": 4, "plan": ["pro"]}]}
    from handler.export import export_model

    export_model(model, None, {"one": sample}, out, name="tabular", version="1", litert_runtime=False)
    return model, open_service(Settings(model_dir=out, serving_runtime="tensorflow"))


def _reference(model: keras.Model, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    import tensorflow as tf  # model.predict refuses numpy arrays of strings; tensors it takes

    inputs = {
        "age": np.array([[r["age"]] for r in rows], dtype=np.float32),
        "visits": np.array([r["visits"] for r in rows], dtype=np.int32),
        "plan": tf.constant([[r["plan"]] for r in rows]),
    }
    out: dict[str, np.ndarray] = model.predict(inputs, verbose=0)
    return out


def _run(s3: Any, bucket: str, key: str, body: bytes, service: Service, settings: Settings, ctx: Any) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    (marker,) = s3_source.handle_event(s3_put_event(bucket, key), ctx, service, settings)["objects"]
    out: dict[str, Any] = marker
    return out


def test_a_csv_of_a_keras_tabular_model_gives_a_column_per_output_value(
    exported: tuple[keras.Model, Service], s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    model, service = exported
    header = ["plan", "visits", "age"]  # any order
    lines = [",".join(str(r[h]) for h in header) for r in ROWS]
    lines.insert(2, "pro,3.5,40")  # row 2: a fraction for an int32 input is refused, not truncated
    body = ("\n".join([",".join(header), *lines]) + "\n").encode()
    marker = _run(s3, bucket, "incoming/users.csv", body, service, settings, lambda_context)
    assert (marker["status"], marker["rows"], marker["predicted"], marker["errors"]) == ("done", 5, 4, 1), marker

    text = s3.get_object(Bucket=bucket, Key="predictions/users.csv.csv")["Body"].read().decode()
    head, *records = csv.reader(io.StringIO(text, newline=""))
    assert head == ["row", "churn", "segment[0]", "segment[1]", "segment[2]"], head
    assert [int(r[0]) for r in records] == [0, 1, 3, 4]
    want = _reference(model, ROWS)
    got = np.array([[float(v) for v in r[1:]] for r in records])
    np.testing.assert_allclose(got[:, 0], want["churn"][:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, 1:], want["segment"], rtol=1e-5, atol=1e-6)

    errors = read_jsonl(s3, bucket, "predictions/users.csv.errors.jsonl")
    assert [(e["row"], [x["feature"] for x in e["errors"]]) for e in errors] == [(2, ["visits"])], errors


def test_a_parquet_of_scalar_columns_serves_the_same_model(
    exported: tuple[keras.Model, Service], s3: Any, bucket: str, settings: Settings, lambda_context: Any
) -> None:
    model, service = exported
    table = pa.table(
        {
            "age": pa.array([r["age"] for r in ROWS], pa.float64()),
            "visits": pa.array([r["visits"] for r in ROWS], pa.int64()),
            "plan": pa.array([r["plan"] for r in ROWS], pa.string()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    marker = _run(s3, bucket, "incoming/users.parquet", buf.getvalue(), service, settings, lambda_context)
    assert (marker["status"], marker["rows"], marker["predicted"]) == ("done", 4, 4), marker

    answers = pq.read_table(
        io.BytesIO(s3.get_object(Bucket=bucket, Key="predictions/users.parquet.parquet")["Body"].read())
    )
    want = _reference(model, ROWS)
    assert answers.column("row").to_pylist() == [0, 1, 2, 3]
    np.testing.assert_allclose(answers.column("churn").to_numpy(), want["churn"][:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.stack(answers.column("segment").to_numpy(zero_copy_only=False)), want["segment"], rtol=1e-5, atol=1e-6
    )

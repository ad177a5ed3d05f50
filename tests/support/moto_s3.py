"""A local S3/SQS server (moto's server mode) over real HTTP on 127.0.0.1, and a service to predict with."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from handler import aws
from handler.core.artifacts import Artifacts
from handler.core.service import Service
from handler.settings import Settings
from tests.conftest import ARTIFACTS
from tests.support.reference import churn_reference
from training.churn_data import COLUMNS, generate

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto on a free loopback port and point every boto3 client of this process at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS"):
            mp.delenv(k, raising=False)
        aws.client.cache_clear()  # clients made before this point would know another endpoint
        yield endpoint
        aws.client.cache_clear()
    server.stop()


# Per test, the client the code under test will get too: a test that clears aws.client's cache (the state
# machine's, which points boto3 at another server for a while) must not leave later tests a client of their own.
@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return aws.client("s3")


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return aws.client("sqs")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"skewless-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def service() -> Service:
    return Service.create(Artifacts.open(ARTIFACTS), Settings().coerce_policy())


@pytest.fixture
def settings(bucket: str) -> Settings:
    """Settings as the function would read them, with the output bucket set to this test's bucket."""
    return replace(Settings(), output_bucket=bucket, s3_part_bytes=5 * 1024 * 1024)


# --- building inputs and reading outputs -----------------------------------------------------


def churn_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n rows of the reference model's features, as training.data generates them."""
    cols, _ = generate(n, seed)
    return [
        {name: (str(cols[name][i]) if cols[name].dtype == object else float(cols[name][i])) for name in COLUMNS}
        for i in range(n)
    ]


def csv_bytes(rows: list[dict[str, Any]], header: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r[h] for h in header])
    return buf.getvalue().encode()


def read_jsonl(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line]


def read_csv_predictions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """A churn CSV predictions object, read by the standard library: header `row,output_0`, a record per row.

    Each record as {"row": int, "prediction": [float]}, the shape of a JSON Lines record, so a test reads
    both alike.
    """
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    records = list(csv.reader(io.StringIO(body, newline="")))
    assert records and records[0] == ["row", "output_0"], records[:1]
    return [{"row": int(row), "prediction": [float(value)]} for row, value in records[1:]]


def read_predictions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The predictions object of a CSV (CSV) or JSON Lines / .npy input (JSON Lines), as JSON Lines records."""
    return read_csv_predictions(s3, bucket, key) if key.endswith(".csv") else read_jsonl(s3, bucket, key)


def expected_predictions(rows: list[dict[str, Any]]) -> np.ndarray:
    """What the training pipeline answers for these rows (not the serving path): the reference for S3 outputs."""
    return churn_reference(rows)


def s3_put_event(bucket: str, key: str, etag: str = "", size: int = 0) -> dict[str, Any]:
    """The notification S3 sends for a PUT, with the key URL-encoded as S3 encodes it."""
    from urllib.parse import quote_plus

    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "s3_put.json").read_text())
    obj = event["Records"][0]["s3"]
    obj["bucket"]["name"] = bucket
    obj["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj["object"].update({"key": quote_plus(key, safe="/"), "eTag": etag, "size": size})
    return event


@pytest.fixture
def moto_process_s3() -> Iterator[Any]:
    """An S3 client for a moto server in its own process, so this process's memory is only ours."""
    import socket
    import subprocess
    import sys
    import time

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield boto3.session.Session().client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)

"""A function killed mid-job, as Lambda kills one at its deadline: a real process, SIGKILLed while its
predictions' multipart upload is open. The retry takes the lease over, aborts the upload the dead one left
(instead of leaving it to the bucket's one-day lifecycle rule), and writes one complete output: every row
once, in order, no upload left open."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import pytest

from handler import aws
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers.s3 import job as s3_source
from tests.conftest import ROOT
from tests.support.faults import MotoProcess
from tests.support.moto_s3 import s3_put_event
from tests.triggers.s3.test_s3_faults import PART, assert_one_complete_output, big_csv, outputs

CHILD = """
import json, sys
from handler.app import lambda_handler
from handler.local_server import LocalContext
lambda_handler(json.loads(sys.argv[1]), LocalContext(timeout_seconds=600))
"""


def test_a_function_killed_mid_upload_leaves_an_orphan_the_retry_aborts(
    moto_proc: MotoProcess, service: Service, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    direct = moto_proc.client(timeout=10)
    body, rows, n = big_csv(repeats=150)
    bucket, key = "killed", "incoming/big.csv"
    direct.create_bucket(Bucket=bucket)
    direct.put_object(Bucket=bucket, Key=key, Body=body)
    event = s3_put_event(bucket, key, etag=direct.head_object(Bucket=bucket, Key=key)["ETag"], size=len(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_", "S3_", "OUTPUT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        AWS_ENDPOINT_URL=moto_proc.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        S3_PART_BYTES=str(PART),
        S3_CHUNK_ROWS="256",  # small chunks: the upload stays open long enough to be seen
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(event)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not direct.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            if child.poll() is not None or time.monotonic() > deadline:
                stderr = child.stderr.read().decode()[-3000:] if child.stderr else ""
                pytest.fail(f"the function ended (rc {child.returncode}) before its upload was seen open:\n{stderr}")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # as Lambda ends a function at its deadline: no cleanup runs
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    [orphan] = direct.list_multipart_uploads(Bucket=bucket)["Uploads"]
    base = "predictions/big.csv"
    assert base + ".done.json" not in outputs(direct, bucket), "a killed job must not have written its marker"
    lease = json.loads(direct.get_object(Bucket=bucket, Key=base + ".checkpoint.json")["Body"].read())
    assert lease["status"] == "in_progress", lease  # the dead one's lease, not yet run out

    monkeypatch.setattr(aws, "client", lambda name: direct)
    settings = replace(Settings(), output_bucket=bucket, s3_part_bytes=PART)
    s3_source.handle_event(event, lambda_context, service, settings)  # Lambda's retry of the event

    assert_one_complete_output(direct, bucket, key, n, service, rows)  # no upload left open, the orphan included
    assert orphan["UploadId"]

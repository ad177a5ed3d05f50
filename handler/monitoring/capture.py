"""Data capture: a sample of the served rows and their answers, as JSON Lines objects on S3.

`CAPTURE_S3_URI=s3://bucket/prefix/` turns it on; `CAPTURE_SAMPLE_RATE` (default 1.0) is the
chance that a served row is kept. Rows are sampled where every trigger meets (the service's
batches), so HTTP, OIP v2, direct invokes, SQS messages and S3 files are captured alike, one
line per row, in the canonical v1 form (a row as TF Serving's `instances` takes it):

    {"captured_at": "2026-11-26T01:02:03.456Z", "request_id": "...", "trigger": "http",
     "model": "churn", "version": "1", "inference_id": "<request's id>/0",
     "instance": {"tenure_months": 3.0, ...}, "outputs": {"output_0": [0.22]}}

`inference_id` is the row's (`handler/core/inference_ids.py`): what labels name the row by, later
(`python -m handler quality`).

Only rows that were answered are kept (a refused row has no answer). Lines are buffered per
container and written as one object, `prefix/YYYY/MM/DD/HH/<time>-<container>-<n>.jsonl`, when
the buffer reaches 1,000 lines or 1 MiB, when its oldest line is 10 s old, and at the end of
every invocation that captured anything: a Lambda container may be frozen, then dropped, after
any invocation, so nothing acknowledged waits for a later one. A failed write is logged, kept
for the next attempt (up to 8 MiB) and never fails the request. `python -m handler drift
s3://bucket/prefix/` reads these objects.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from handler.core.inference_ids import RowIds
from handler.core.service import Prediction, Service
from handler.observability import logger
from handler.settings import Settings

MAX_LINES = 1000
MAX_BYTES = 1 << 20
MAX_AGE_SECONDS = 10.0
# What a failing destination may leave buffered before the oldest lines are dropped (and counted).
MAX_PENDING_BYTES = 8 << 20


def attach(service: Service, settings: Settings) -> Capture | None:
    """Capture the service's batches when CAPTURE_S3_URI is set; None (and nothing captured) otherwise."""
    if settings.capture_s3_uri is None or settings.capture_sample_rate == 0:
        return None
    bucket, _, prefix = settings.capture_s3_uri.removeprefix("s3://").partition("/")
    manifest = service.artifacts.manifest
    capture = Capture(bucket, prefix, settings.capture_sample_rate, manifest.name, manifest.version)
    service.observers.append(capture.observe)
    logger.info("data capture on", extra={"uri": settings.capture_s3_uri, "sample_rate": settings.capture_sample_rate})
    return capture


class Capture:
    """Buffers sampled rows of one container and writes them to S3 as JSON Lines objects."""

    def __init__(
        self, bucket: str, prefix: str, rate: float, model: str, version: str, s3: Any = None, seed: int | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.rate, self.model, self.version = rate, model, version
        self.container = uuid.uuid4().hex[:12]
        self.objects_written = 0
        self.lines_dropped = 0
        self._s3 = s3
        self._rng = np.random.default_rng(seed)
        self._lines: list[bytes] = []
        self._bytes = 0
        self._oldest: float | None = None
        self._request_id: str | None = None
        self._trigger: str | None = None
        self._lock = threading.Lock()

    def begin(self, request_id: str | None, trigger: str) -> None:
        """The invocation the next rows belong to."""
        self._request_id, self._trigger = request_id, trigger

    def observe(self, columns: Mapping[str, np.ndarray], prediction: Prediction) -> None:
        """Sample the answered rows of one served batch into the buffer; write it if it is full or old."""
        n = len(next(iter(columns.values())))
        picked = np.flatnonzero(self._rng.random(n) < self.rate) if self.rate < 1.0 else np.arange(n)
        if prediction.input_problems or prediction.output_problems:
            unanswered = {*prediction.input_problems, *prediction.output_problems}
            picked = np.array([i for i in picked.tolist() if i not in unanswered], dtype=np.intp)
        if not len(picked):
            return
        ids = prediction.ids or RowIds(str(self._request_id))  # a batch no trigger named: the invocation's id
        lines = self._lines_for(columns, prediction.outputs, picked, ids)
        with self._lock:
            self._lines.extend(lines)
            self._bytes += sum(len(line) for line in lines)
            self._oldest = self._oldest or time.monotonic()
            due = (
                len(self._lines) >= MAX_LINES
                or self._bytes >= MAX_BYTES
                or time.monotonic() - self._oldest >= MAX_AGE_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one object. Never raises: capture must not fail a request."""
        with self._lock:
            lines, self._lines, self._bytes, self._oldest = self._lines, [], 0, None
        if not lines:
            return
        now = datetime.now(UTC)
        key = f"{self.prefix}{now:%Y/%m/%d/%H}/{now:%Y%m%dT%H%M%S%fZ}-{self.container}-{self.objects_written:06d}.jsonl"
        try:
            from handler import aws  # lazily: boto3's helpers only where capture is on

            s3 = self._s3 if self._s3 is not None else aws.client("s3")
            s3.put_object(Bucket=self.bucket, Key=key, Body=b"".join(lines), ContentType="application/x-ndjson")
        except Exception as exc:  # the destination is down or refuses: keep the lines for the next attempt
            self._keep(lines)
            logger.warning(
                "data capture could not write to S3; the lines are kept for the next attempt",
                extra={"bucket": self.bucket, "key": key, "lines": len(lines), "error_type": type(exc).__name__},
            )
            return
        self.objects_written += 1

    def _keep(self, lines: list[bytes]) -> None:
        with self._lock:
            kept = lines + self._lines
            size = sum(len(line) for line in kept)
            while kept and size > MAX_PENDING_BYTES:
                size -= len(kept.pop(0))
                self.lines_dropped += 1
            self._lines, self._bytes = kept, size
            self._oldest = self._oldest or time.monotonic()

    def _lines_for(
        self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], picked: np.ndarray, ids: RowIds
    ) -> list[bytes]:
        features = {name: [_plain(v) for v in col[picked].tolist()] for name, col in columns.items()}
        answers = {name: np.asarray(out)[picked].tolist() for name, out in outputs.items()}
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = {
            "captured_at": stamp,
            "request_id": self._request_id,
            "trigger": self._trigger,
            "model": self.model,
            "version": self.version,
        }
        lines = []
        for j, inference_id in enumerate(ids.of(picked.tolist())):
            record = {
                **head,
                "inference_id": inference_id,
                "instance": {name: values[j] for name, values in features.items()},
                "outputs": {name: values[j] for name, values in answers.items()},
            }
            lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        return lines


def _plain(value: Any) -> Any:
    """A value as a client sends it: bytes (a {"b64": ...} input) go back to {"b64": ...}."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

"""The one place that talks to S3 and SQS: lazily created boto3 clients and the few calls we make.

Clients honour `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL_SQS` (botocore reads
them natively), so tests and `make run` point them at a local server. Every function takes its
client as an argument; only `client()` knows how one is made.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, BinaryIO

# S3 refuses multipart parts under 5 MiB, except the last one.
MIN_PART_BYTES = 5 * 1024 * 1024


@functools.cache
def client(service: str) -> Any:
    """A boto3 client for `service`, created on first use and reused for the life of the container."""
    import boto3  # deferred: a health check should not pay for importing boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=60,
        # Path-style works with any endpoint (a local server on 127.0.0.1 has no bucket subdomains).
        s3={"addressing_style": "path"} if _custom_endpoint(service) else None,
    )
    return boto3.session.Session().client(service, config=config)


def error_code(exc: Exception) -> str:
    """The error code of a botocore ClientError ("NoSuchKey", "PreconditionFailed", ...), else ""."""
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _custom_endpoint(service: str) -> bool:
    return bool(os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL"))


# --- S3 ------------------------------------------------------------------------------------


def put_json(s3: Any, bucket: str, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> None:
    """One small object, written whole (a single PUT is atomic: readers see all of it or nothing)."""
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=dict(metadata or {}))


def abort_uploads(s3: Any, bucket: str, key: str, keep: Collection[str] = ()) -> int:
    """Abort the open multipart uploads of `key` but those in `keep`: what an invocation killed mid-write left.

    Returns how many were aborted. One that is gone already (another invocation aborted it) is not an error.
    """
    aborted = 0
    pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key)
    for page in pages:
        for upload in page.get("Uploads", []):
            if upload["Key"] != key or upload["UploadId"] in keep:
                continue
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            except s3.exceptions.NoSuchUpload:
                continue
            aborted += 1
    return aborted


class MultipartWriter:
    """Writes one S3 object through a temp file and multipart upload; it appears only on `complete()`.

    Lines are appended to a temp file; each time it holds `part_bytes`, that part is uploaded and
    the file is reused, so memory stays flat whatever the size. An object smaller than one part is
    written with a single PUT. Leaving the `with` block without `complete()` aborts the upload.

    A full part is uploaded by one background thread while the caller goes on filling a second
    temp file: the wait for S3 overlaps the work of making the next part. At most one part is in
    flight; its failure is raised by the next `write` that fills a part, or by `complete`.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        content_type: str = "application/x-ndjson",
        part_bytes: int = 8 << 20,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.s3, self.bucket, self.key, self.content_type = s3, bucket, key, content_type
        self.metadata = dict(metadata or {})  # fixed when the object starts: a PUT's, or the upload's
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self._buf: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._files = [self._buf]  # every temp file made, to close
        self._spare: BinaryIO | None = None  # an emptied file, ready to be filled while a part uploads
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.bytes_written = 0
        self.done = False

    def suspend(self) -> tuple[dict[str, Any], bytes]:
        """Stop for now, to go on in another invocation: (the upload's state, the bytes not yet in a part).

        Every full part is uploaded first; the tail (less than a part: S3 takes no smaller part but the last)
        is handed back, for the caller to keep. The upload stays open: leaving the block does not abort it.
        """
        self._wait()
        self._buf.seek(0)
        tail = self._buf.read()
        self.done = True
        return {"upload_id": self._upload_id, "parts": list(self._parts), "bytes": self.bytes_written}, tail

    def resume(self, state: dict[str, Any], tail: bytes) -> None:
        """Go on with an upload another invocation suspended: its parts stay, its tail is the buffer again."""
        self._upload_id = state.get("upload_id")
        self._parts = [dict(p) for p in state.get("parts", [])]
        self.bytes_written = int(state.get("bytes", 0))
        self._buf.write(tail)

    def write(self, data: bytes) -> None:
        """Append bytes; uploads a part whenever a full one is buffered."""
        self._buf.write(data)
        self.bytes_written += len(data)
        if self._buf.tell() >= self.part_bytes:
            self._flush_part()

    def complete(self) -> None:
        """Upload what is left and make the object visible, whole."""
        self._wait()
        if self._upload_id is None:
            self._buf.seek(0)
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=self._buf.read(),
                ContentType=self.content_type,
                Metadata=self.metadata,
            )
        else:
            if self._buf.tell() or not self._parts:
                self._flush_part()
                self._wait()
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self.done = True

    def abort(self) -> None:
        """Drop the unfinished upload so no part lingers (and nothing becomes visible)."""
        with contextlib.suppress(Exception):  # a part that failed: the upload is aborted all the same
            self._wait()
        if self._upload_id is not None and not self.done:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for fh in self._files:
            fh.close()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            # Metadata is fixed when the upload starts; counts go into the completion marker instead.
            resp = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type, Metadata=self.metadata
            )
            self._upload_id = resp["UploadId"]
        self._wait()  # one part in flight at a time: memory and temp space stay at two parts
        full, size, number = self._buf, self._buf.tell(), len(self._parts) + 1
        if self._spare is None:
            self._spare = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
            self._files.append(self._spare)
        self._buf, self._spare = self._spare, None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        self._in_flight = self._pool.submit(self._upload_part, full, size, number)

    def _upload_part(self, fh: BinaryIO, size: int, number: int) -> None:
        resp = self.s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=_Window(fh, size),
            ContentLength=size,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        fh.seek(0)
        fh.truncate()
        self._spare = fh

    def _wait(self) -> None:
        """Wait for the part in flight, if any; raises its failure."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def __enter__(self) -> MultipartWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self.done:
                self.abort()
        finally:
            self.close()


class _Window(io.RawIOBase):
    """The first `size` bytes of a file, as a seekable stream botocore can checksum and send in blocks."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh, self._size = fh, size
        fh.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset = self._size + offset
        elif whence == io.SEEK_CUR:
            offset = self._fh.tell() + offset
        return self._fh.seek(min(max(offset, 0), self._size))

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._fh.tell()
        n = left if size is None or size < 0 else min(size, left)
        return self._fh.read(max(n, 0))

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


# --- SQS -----------------------------------------------------------------------------------


def send_message(sqs: Any, queue_url: str, body: str, attributes: Mapping[str, str], dedup_id: str) -> None:
    """Send one message with string attributes; on a FIFO queue `dedup_id` makes redelivery a no-op."""
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": body,
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    }
    if queue_url.endswith(".fifo"):
        kwargs["MessageDeduplicationId"] = dedup_id
        kwargs["MessageGroupId"] = dedup_id
    sqs.send_message(**kwargs)

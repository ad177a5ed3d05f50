"""Reading one S3 object, one version of it, through a network that drops connections.

- Every read is pinned: `If-Match` with the ETag the job started from (the event's, or the first read's),
  and the version id where the bucket keeps versions. An object replaced mid-read fails the next read
  with `ObjectChanged` instead of mixing two versions; the newer version's own event does the work.
- A stream cut mid-body (a reset, a timeout, a short body) resumes from the byte it reached with a ranged
  GET pinned the same way, a bounded number of times; botocore retries a failed request itself, but not
  a body that breaks once the answer has started.
- `S3Object` is what a file format reads (`formats.base.ObjectSource`), and remembers the ETag and size
  it read.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from handler.aws import error_code

# A body that breaks more often than this on one read is not a passing fault: the error goes up (Lambda retries).
RESUMES = 5
# A streamed body is read this much at a time: a break loses at most this much, read again from where it stopped.
STEP_BYTES = 64 << 10
_BROKEN = (BotoCoreError, HTTPError, ConnectionError, TimeoutError)


class ObjectChanged(Exception):
    """The object is no longer the version the job started from (replaced or deleted since)."""


class S3Object:
    """One version of one S3 object, read as a file format reads it (`formats.base.ObjectSource`)."""

    def __init__(self, s3: Any, bucket: str, key: str, etag: str = "", version_id: str | None = None) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.etag: str | None = etag.strip('"') or None  # pinned: the first read sets it if the event gave none
        self.version_id = version_id
        self.size: int | None = None
        self.resumed = 0  # broken bodies picked up again, over every read

    def head(self, size: int) -> bytes:
        """The first `size` bytes (fewer if the object is shorter; none of an empty object)."""
        try:
            return self.get(0, size - 1)
        except ClientError as exc:
            if error_code(exc) != "InvalidRange":  # S3 answers 416 to any range of an empty object
                raise
            self.size = 0
            return b""

    def stat(self) -> int:
        """The object's size (a HEAD, pinned): fails with ObjectChanged if it is not the version pinned."""
        self.size = int(self._call("head_object")["ContentLength"])
        return self.size

    def stream(self, start: int = 0) -> BinaryIO:
        """Its bytes from `start`, read in order through one GET, resumed where a broken body stopped."""
        return io.BufferedReader(_Resuming(self, start), buffer_size=1 << 20)

    def seekable(self) -> BinaryIO:
        """A random-access file of it: each read a ranged GET (Parquet reads its footer, then column ranges)."""
        if self.size is None:
            self.stat()
        return RangeFile(self)  # type: ignore[return-value]  # a RawIOBase, read as a binary file

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, end] (inclusive), whole: a body broken on the way is read again from where it stopped."""
        out = bytearray()
        for _ in range(RESUMES + 1):
            body = self.open_body(start + len(out), end)
            try:
                out += body.read()
            except _BROKEN:
                self.resumed += 1
                continue
            if start + len(out) > end or (self.size is not None and start + len(out) >= self.size):
                return bytes(out)
            self.resumed += 1  # a short answer: botocore's length check missed it (a proxy), ask for the rest
        raise ConnectionError(f"s3://{self.bucket}/{self.key}: bytes {start}-{end} broke {RESUMES + 1} times")

    def open_body(self, start: int, end: int | None = None) -> Any:
        """The streaming body of a GET from `start` (to `end`, inclusive), pinned to the version."""
        rng = f"bytes={start}-{'' if end is None else end}" if start or end is not None else None
        return self._call("get_object", **({"Range": rng} if rng else {}))["Body"]

    def _call(self, operation: str, **kwargs: Any) -> Any:
        if self.etag:
            kwargs["IfMatch"] = f'"{self.etag}"'
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        try:
            resp = getattr(self.s3, operation)(Bucket=self.bucket, Key=self.key, **kwargs)
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                raise ObjectChanged(
                    f"s3://{self.bucket}/{self.key} changed since its event (ETag {self.etag})"
                ) from None
            raise
        if self.etag is None:
            self.etag = str(resp.get("ETag", "")).strip('"') or None
            self.version_id = self.version_id or resp.get("VersionId")
        if self.size is None:  # "bytes 0-99/12288" gives the whole object's size; an answer without a range, its own
            whole = str(resp.get("ContentRange") or "").rpartition("/")[2]
            self.size = (
                int(whole) if whole.isdigit() else int(resp.get("ContentLength", 0)) if "Range" not in kwargs else None
            )
        return resp


class _Resuming(io.RawIOBase):
    """The bytes of one object from `start`, through one GET; a broken body resumes from the byte reached."""

    def __init__(self, obj: S3Object, start: int) -> None:
        self._obj, self._pos = obj, start
        self._body: Any = None
        self._broken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            if self._body is None:
                if self._obj.size is not None and self._pos >= self._obj.size:
                    return 0  # a resumed read at the very end: no range left to ask for
                self._body = self._obj.open_body(self._pos)
            try:
                # In steps: what one read() had received is lost with it when the body breaks.
                data = self._body.read(min(len(b), STEP_BYTES))
            except _BROKEN:
                self._broken += 1
                self._obj.resumed += 1
                if self._broken > RESUMES:
                    raise
                self._body = None
                continue
            b[: len(data)] = data
            self._pos += len(data)
            return len(data)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
        super().close()


class RangeFile(io.RawIOBase):
    """One S3 object version as a seekable, read-only file: each read is a ranged GET (Parquet's random access)."""

    def __init__(self, obj: S3Object) -> None:
        self.obj = obj
        self.size: int = obj.size if obj.size is not None else obj.stat()
        self._pos = 0
        self.requests = 0  # ranged GETs made: a Parquet read should need a few per row group

    @property
    def etag(self) -> str:
        return self.obj.etag or ""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self.obj.get(self._pos, end - 1)
        self.requests += 1
        self._pos = end
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

"""The completion marker and the lease: written conditionally, so two invocations never vouch for each other's outputs.

Two small objects beside the outputs, each written only if it is still what was read (S3's conditional
writes: `If-None-Match: *` to create, `If-Match: <its ETag>` to replace); a write whose condition fails
raises `MarkerTaken`: someone else moved first.
- The marker (`<output>.done.json`) says what the outputs hold: the source version (ETag, version id,
  the event's sequencer), the model, the counts and the status (`done`, `rejected`; `in_progress` while
  earlier outputs are being replaced, so it never vouches for outputs it does not describe). A reader
  waits for it.
- The lease (`<output>.checkpoint.json`) is held by the one invocation predicting one version: `in_progress`
  until `lease_until`, then `completing` while its outputs become visible. A version of the object is
  predicted only under the lease; another version waits for it, and a lease left by a dead invocation
  expires. It is deleted once the marker is written.
An older version never replaces the results of a newer one (by the events' sequencers), and a newer one
always gets its own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from handler import aws
from handler.triggers.s3.event import ObjectRef, newer

FINAL = ("done", "rejected")


class MarkerTaken(Exception):
    """The marker changed since it was read: another invocation took the object (or the lease) first."""


@dataclass(frozen=True)
class Marker:
    """A marker as read: its body (None: no marker yet) and its ETag (the condition of the next write)."""

    body: dict[str, Any] | None
    etag: str | None

    @property
    def status(self) -> str | None:
        return None if self.body is None else self.body.get("status")

    @property
    def source(self) -> dict[str, Any]:
        return (self.body or {}).get("source") or {}

    def describes(self, ref: ObjectRef) -> bool:
        """The marker is of the version this event names (by version id, else by ETag)."""
        src = self.source
        if ref.version_id and src.get("version_id"):
            return bool(src["version_id"] == ref.version_id)
        return bool(ref.pinned_etag) and src.get("etag") == ref.pinned_etag

    def is_newer_than(self, ref: ObjectRef) -> bool:
        """The marker is of a later version of the object than the event's (by the events' sequencers)."""
        theirs = str(self.source.get("sequencer") or "")
        return bool(theirs and ref.sequencer and newer(theirs, ref.sequencer))

    def lease_held(self, now: float | None = None) -> bool:
        """An invocation is predicting (or completing) and its lease has not run out."""
        if self.status == "completing":
            return True
        until = (self.body or {}).get("lease_until")
        return self.status == "in_progress" and isinstance(until, (int, float)) and until > (now or time.time())


def read_marker(s3: Any, bucket: str, key: str) -> Marker:
    """The marker (or lease) object at `key`, with its ETag; an empty Marker if there is none."""
    try:
        resp = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return Marker(None, None)
    etag = str(resp.get("ETag", ""))
    try:
        body = json.loads(resp["Body"].read())
    except ValueError:
        return Marker({"status": "unreadable"}, etag)  # replaced by whoever writes next, as any marker
    return Marker(body if isinstance(body, dict) else {"status": "unreadable"}, etag)


def write_marker(s3: Any, bucket: str, key: str, body: dict[str, Any], over: Marker) -> Marker:
    """Replace `over` (or create the object if there was none) only if it is still what was read."""
    condition = {"IfMatch": over.etag} if over.etag else {"IfNoneMatch": "*"}
    data = json.dumps(body, indent=1, ensure_ascii=False).encode()
    try:
        resp = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json", **condition)
    except s3.exceptions.ClientError as exc:
        if aws.error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise MarkerTaken(f"s3://{bucket}/{key} changed since it was read") from None
        raise
    return Marker(body, str(resp.get("ETag", "")))

"""The objects an S3 event names: the S3 notification (`Records`) and EventBridge's "Object Created".

Notification keys are URL-encoded the way HTML forms are ('+' for a space, '%xx' for the rest);
EventBridge's are not. Each object carries what the event saw of it: its ETag and size, its version id
(in a versioned bucket) and its `sequencer`, which orders the events of one key (S3 delivers them in
any order, and more than once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from handler.observability import logger


@dataclass(frozen=True)
class ObjectRef:
    """One created object named by an event: its decoded key, and the version of it the event saw."""

    bucket: str
    key: str
    etag: str = ""
    size: int | None = None
    version_id: str | None = None
    sequencer: str = ""

    @property
    def pinned_etag(self) -> str:
        """The ETag every read of this version must match ('' when the event gave none)."""
        return self.etag.strip('"')


def newer(a: str, b: str) -> bool:
    """Whether sequencer `a` is later than `b` (events of one key).

    As S3's documentation says to compare them: the shorter right-padded with zeros, then compared as text
    (they are hexadecimal strings of different lengths). A missing sequencer is older than any.
    """
    width = max(len(a), len(b))
    return a.upper().ljust(width, "0") > b.upper().ljust(width, "0")


def objects_in_event(event: dict[str, Any]) -> list[ObjectRef]:
    """The created objects an S3 notification or an EventBridge "Object Created" event names."""
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

    if "Records" in event:
        refs = []
        for record in S3Event(event).records:
            if not record.event_name.startswith("ObjectCreated:"):
                logger.info("ignoring S3 event", extra={"event_name": record.event_name})
                continue
            obj = record.s3.get_object
            raw = obj.raw_event
            refs.append(
                ObjectRef(
                    record.s3.bucket.name,
                    unquote_plus(obj.key),
                    obj.etag,
                    obj.get("size"),
                    raw.get("versionId") or None,
                    str(raw.get("sequencer") or ""),
                )
            )
        return refs
    if event.get("source") == "aws.s3" and "detail" in event:
        eb = S3EventBridgeNotificationEvent(event)
        if eb.detail_type != "Object Created":
            logger.info("ignoring EventBridge S3 event", extra={"detail_type": eb.detail_type})
            return []
        raw_object = event["detail"].get("object") or {}
        detail = eb.detail
        return [
            ObjectRef(
                detail.bucket.name,
                detail.object.key,
                detail.object.etag,
                detail.object.size,
                raw_object.get("version-id") or None,
                str(raw_object.get("sequencer") or ""),
            )
        ]
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return []
    raise ValueError("not an S3 notification or an EventBridge S3 event")

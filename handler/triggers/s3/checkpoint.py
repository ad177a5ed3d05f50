"""Jobs that outlive one invocation: stop before the deadline, keep what is done, go on in the next one.

Before each chunk the job asks the Lambda context how long it has left. With less than a margin (a
few times the slowest chunk so far, at least MIN_MARGIN_S) it stops cleanly between two chunks and
records a checkpoint in its lease object: the next row, the counts so far, each output's open
multipart upload (its id and the parts uploaded) and where its last bytes (less than a part) were put,
and the version it reads. Then it invokes its own function asynchronously with a continuation event,
and answers. The next invocation takes the lease, reads the tails back, and goes on from the next row
with the same chunk boundaries, so the outputs hold the same bytes as one long run would write.

Why a self-invocation, not Lambda's retry of a failed event: an asynchronous event is retried at most
twice (after about one and three minutes) and then counts as failed, while an object may need many
invocations. The retry still helps: a continuation whose invocation failed is resumed from the same
checkpoint when Lambda retries the original event (the lease says where it stood).
Only CSV and JSON Lines answers (CSV, JSON Lines and .npy inputs) are resumed: a Parquet file's footer
lists every row group, which a later process cannot append to; a Parquet job runs in one invocation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handler.observability import logger
from handler.triggers.s3.keys import OutputKeys, tail_key
from handler.triggers.s3.marker import Marker, write_marker

if TYPE_CHECKING:  # app.py imports is_continuation at init: botocore's exceptions only with the S3 job
    from handler.s3_objects import S3Object

# A job that needs more continuations than this is not making progress: it fails instead of looping.
MAX_HOPS = 500
CONTINUE_KEY = "skewless_continue"


@dataclass(frozen=True)
class Checkpoint:
    """Where a suspended job stands (kept in its lease object)."""

    next_row: int
    counts: dict[str, int]
    preamble: int  # bytes the answers' writer writes before any row (a CSV header), already uploaded
    uploads: dict[str, dict[str, Any]]  # "predictions", "errors": each upload's id, parts and byte count
    tails: dict[str, str]  # the same: the object holding its bytes not yet in a part
    hop: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_row": self.next_row,
            "counts": self.counts,
            "preamble": self.preamble,
            "uploads": self.uploads,
            "tails": self.tails,
            "hop": self.hop,
        }

    @classmethod
    def from_lease(cls, lease: dict[str, Any] | None) -> Checkpoint | None:
        found = (lease or {}).get("checkpoint")
        if not isinstance(found, dict):
            return None
        return cls(
            next_row=int(found["next_row"]),
            counts={k: int(v) for k, v in found["counts"].items()},
            preamble=int(found["preamble"]),
            uploads=dict(found["uploads"]),
            tails=dict(found["tails"]),
            hop=int(found["hop"]),
        )


def continuation_event(source: dict[str, Any], hop: int) -> dict[str, Any]:
    """The event the job invokes its own function with, to go on from its checkpoint."""
    keep = ("bucket", "key", "etag", "version_id", "sequencer", "size")
    return {CONTINUE_KEY: {**{k: source.get(k) for k in keep}, "hop": hop}}


def is_continuation(event: Any) -> bool:
    return isinstance(event, dict) and isinstance(event.get(CONTINUE_KEY), dict)


def invoke_continuation(context: Any, event: dict[str, Any]) -> None:
    """Invoke this function again, asynchronously (InvocationType Event), with the continuation event."""
    from handler import aws

    arn = getattr(context, "invoked_function_arn", None)
    if not arn:
        raise RuntimeError("the job must go on in another invocation, but the Lambda context names no function")
    aws.client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps(event).encode())


def lease_for_a_hop(seconds: float = 120.0) -> float:
    """How long a suspended job's lease holds until its continuation takes it (an async invoke starts in seconds)."""
    return time.time() + seconds


def suspend(
    s3: Any,
    out: OutputKeys,
    lease: Marker,
    obj: S3Object,
    preds: Any,
    errs: Any,
    counts: dict[str, int],
    stop: tuple[int, int],
    context: Any,
) -> dict[str, Any]:
    """Keep what is done (uploads open, their tails in objects of their own), then invoke the continuation."""
    body = dict(lease.body or {})
    # The version read (the event may have named none): every later invocation pins its reads to it.
    body["source"] = {**body["source"], "etag": obj.etag or "", "version_id": obj.version_id, "size": obj.size}
    hop = int((body.get("checkpoint") or {}).get("hop", 0)) + 1
    if hop > MAX_HOPS:
        raise RuntimeError(
            f"s3://{body['source']['bucket']}/{body['source']['key']}: {MAX_HOPS} invocations and not done"
        )
    uploads, tails = {}, {}
    for name, writer in (("predictions", preds), ("errors", errs)):
        uploads[name], tail = writer.suspend()
        tails[name] = tail_key(out, name)
        s3.put_object(Bucket=out.bucket, Key=tails[name], Body=tail)
    next_row, preamble = stop
    checkpoint = Checkpoint(next_row, dict(counts), preamble, uploads, tails, hop)
    body.update(status="in_progress", lease_until=round(lease_for_a_hop(), 3), checkpoint=checkpoint.to_dict())
    write_marker(s3, out.bucket, out.checkpoint, body, lease)
    invoke_continuation(context, continuation_event(body["source"], hop))
    logger.info(
        "job goes on in another invocation", extra={"key": body["source"]["key"], "next_row": next_row, "hop": hop}
    )
    return {"status": "continuing", "source": body["source"], "next_row": next_row, "hop": hop, **counts}


def reopen(s3: Any, out: OutputKeys, resume: Checkpoint, preds: Any, errs: Any) -> None:
    """Pick up the uploads a suspended invocation left open, and their tails."""
    for name, writer in (("predictions", preds), ("errors", errs)):
        tail = s3.get_object(Bucket=out.bucket, Key=resume.tails[name])["Body"].read()
        writer.resume(resume.uploads[name], tail)

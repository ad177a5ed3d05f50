"""Where the results of one input object go, and which input keys are refused because of it.

For `INPUT_PREFIX/a/b.csv`: `OUTPUT_PREFIX/a/b.csv` followed by the predictions' suffix (the format's:
`.csv`, `.parquet`, `.jsonl`), `.errors.jsonl` and `.done.json` (and `.checkpoint.json` while a long
job is underway). Two inputs never share an output key:
- an input key ending in one of our own endings (`a.csv.errors`) would write its predictions onto
  another input's errors (`a.csv.errors.jsonl`): such keys are refused, with the reason;
- so are inputs under a prefix another part of the function writes to below OUTPUT_PREFIX (data
  capture, SQS results): their outputs would be read as that part's;
- a key too long for S3's 1,024 bytes once a suffix is added is shortened the same way every time
  (its start, then `~` and 16 hex digits of the key's sha256); the full source key is in the marker
  and in each output object's metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from handler.settings import Settings

ERRORS_SUFFIX = ".errors.jsonl"
MARKER_SUFFIX = ".done.json"
CHECKPOINT_SUFFIX = ".checkpoint.json"
# An input key ending so names another input's output key (its predictions would be "<key>.jsonl"; its lease
# "<key>.checkpoint.json", which is where a checkpoint keeps an output's tail: "<input>.tail-errors.checkpoint.json").
RESERVED_ENDINGS = (".errors", ".done", ".checkpoint", ".tail-predictions", ".tail-errors")
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes
_HASH_CHARS = 16
# S3 keeps at most 2 KB of user metadata: a longer quoted key is named by its hash there (the marker has it whole).
_MAX_METADATA_CHARS = 1800


@dataclass(frozen=True)
class OutputKeys:
    """Where the results of one input object go."""

    bucket: str
    predictions: str
    errors: str
    marker: str
    checkpoint: str
    shortened: bool = False


def output_keys(bucket: str, key: str, settings: Settings, predictions_suffix: str) -> OutputKeys:
    """The input's relative key under the output prefix, with our suffixes; shortened if S3 would refuse it."""
    rel = key[len(settings.input_prefix) :]
    base = settings.output_prefix + rel
    suffixes = (predictions_suffix, ERRORS_SUFFIX, MARKER_SUFFIX, CHECKPOINT_SUFFIX)
    longest = max(len(s.encode()) for s in suffixes)
    shortened = len(base.encode()) + longest > MAX_KEY_BYTES
    if shortened:
        tag = "~" + hashlib.sha256(rel.encode()).hexdigest()[:_HASH_CHARS]
        room = MAX_KEY_BYTES - longest - len(settings.output_prefix.encode()) - len(tag)
        base = settings.output_prefix + rel.encode()[:room].decode("utf-8", "ignore") + tag
    return OutputKeys(
        bucket=settings.output_bucket or bucket,
        predictions=base + predictions_suffix,
        errors=base + ERRORS_SUFFIX,
        marker=base + MARKER_SUFFIX,
        checkpoint=base + CHECKPOINT_SUFFIX,
        shortened=shortened,
    )


def tail_key(out: OutputKeys, name: str) -> str:
    """Where a suspended job keeps the last bytes of one output (`name`: predictions, errors) until it goes on."""
    return out.checkpoint.removesuffix(CHECKPOINT_SUFFIX) + f".tail-{name}" + CHECKPOINT_SUFFIX


def reserved(key: str, settings: Settings) -> str | None:
    """Why an input key may not be predicted (its outputs would land on another's), or None."""
    rel = key[len(settings.input_prefix) :]
    for ending in RESERVED_ENDINGS:
        if rel.endswith(ending):
            return (
                f"the key ends with {ending!r}, which names another input's output "
                f"({rel.removesuffix(ending)}{ending}.jsonl is that input's {ending[1:]} object): rename the file"
            )
    out = settings.output_prefix + rel
    for what, prefix in _written_below_output(settings):
        if out.startswith(prefix):
            return f"its outputs would land under {prefix}, where the function writes {what}: use another folder"
    return None


def _written_below_output(settings: Settings) -> list[tuple[str, str]]:
    """Prefixes below OUTPUT_PREFIX (in the output bucket) that other parts of the function write to."""
    found = [("SQS results", settings.results_s3_prefix)]
    if settings.capture_s3_uri:
        bucket, _, prefix = settings.capture_s3_uri.removeprefix("s3://").partition("/")
        if settings.output_bucket in (None, bucket):
            found.append(("captured traffic", prefix))
    return [(what, p) for what, p in found if p and p.startswith(settings.output_prefix)]


def source_metadata(key: str) -> dict[str, str]:
    """The source key as S3 object metadata (ASCII only: quoted; named by its hash if too long to keep)."""
    quoted = quote(key, safe="/")
    if len(quoted) > _MAX_METADATA_CHARS:
        quoted = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return {"source-key": quoted}

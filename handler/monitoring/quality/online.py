"""Labels arriving on S3, joined with the rows data capture wrote in the same period: what the labels trigger runs.

A labels object names the hour its rows were served in by its key, as SageMaker's ground-truth layout does:
`<LABELS_PREFIX>YYYY/MM/DD/HH/<name>.jsonl`. Its labels are joined with the capture objects of that hour and the
next (data capture files a row by the time it writes it, up to a few seconds after serving it, so an hour's last
rows may sit in the next hour's folder). A key that names no hour is joined with the capture of the
LOOKBACK_HOURS before now. Only the rows that have a label are kept (`join.py`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from handler.core.artifacts import Artifacts
from handler.monitoring.quality.baseline import QualityBaseline
from handler.monitoring.quality.evaluate import Evaluation, evaluate
from handler.monitoring.quality.join import Joined
from handler.monitoring.quality.labels import Labels
from handler.monitoring.quality.problem import resolve
from handler.monitoring.quality.report import load_baseline, slicer_of

LOOKBACK_HOURS = 24
_HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/")
# Reads of S3 objects a line at a time: memory follows the labels, not the objects' size.
_CHUNK = 1 << 20


def hours(key: str, labels_prefix: str, now: datetime) -> list[datetime]:
    """The hours whose capture a labels object is joined with: the hour its key names and the next, else the
    LOOKBACK_HOURS up to now."""
    found = _HOUR.search(key.removeprefix(labels_prefix))
    if found:
        year, month, day, hour = map(int, found.groups())
        named = datetime(year, month, day, hour, tzinfo=UTC)
        return [named, named + timedelta(hours=1)]
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=h) for h in range(LOOKBACK_HOURS, -1, -1)]


def capture_keys(s3: Any, bucket: str, prefix: str, period: list[datetime]) -> list[str]:
    """Every capture object of the period, in key order (data capture's folders are `prefix/YYYY/MM/DD/HH/`)."""
    keys: list[str] = []
    for hour in period:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{hour:%Y/%m/%d/%H}/")
        keys += [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return keys


def _lines(s3: Any, bucket: str, key: str) -> Any:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines(chunk_size=_CHUNK)


def assess_labels(
    s3: Any,
    bucket: str,
    key: str,
    labels_prefix: str,
    capture_uri: str,
    artifacts: Artifacts,
    now: datetime | None = None,
) -> tuple[Evaluation, list[datetime]]:
    """One labels object joined with the capture of its period and evaluated against the model's quality baseline.

    S3's errors are raised (the trigger lets Lambda retry); QualityInputError and ProblemError say what is wrong
    with the model's files or its problem.
    """
    labels = Labels()
    labels.read(_lines(s3, bucket, key), f"s3://{bucket}/{key}")
    capture_bucket, _, capture_prefix = capture_uri.removeprefix("s3://").partition("/")
    capture_prefix = capture_prefix if not capture_prefix or capture_prefix.endswith("/") else capture_prefix + "/"
    period = hours(key, labels_prefix, now or datetime.now(UTC))
    joined = Joined()
    for captured in capture_keys(s3, capture_bucket, capture_prefix, period):
        joined.read(_lines(s3, capture_bucket, captured), f"s3://{capture_bucket}/{captured}", labels)
    baseline: QualityBaseline | None = load_baseline(artifacts, None)
    recorded = {"problem": baseline.problem, "output": baseline.output} if baseline is not None else None
    values = [label.value for label in joined.labels]
    problem = resolve(artifacts.signature, artifacts.manifest.raw, values, None, None, recorded)
    return evaluate(joined, labels, problem, baseline, slicer_of(artifacts)), period

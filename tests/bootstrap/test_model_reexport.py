"""A model re-exported to the same MODEL_S3_URI is what the next cold start serves, even when the sandbox's
/tmp still holds the copy an earlier start downloaded from that URI.

Each test publishes one artifact folder at a URI, starts the function from it, replaces every object under
the URI with another valid artifact, then starts a new function with the same MODEL_CACHE_DIR (a cold start
in the same sandbox) and checks which model answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from handler.core.artifacts import DIGEST_KEY, manifest_digest
from handler.settings import Settings
from tests.bootstrap.test_model_loading_faults import call, from_s3
from tests.support import zoo

PREFIX = "models/current/"


def _publish(s3: Any, bucket: str, files: dict[str, bytes]) -> str:
    """Replace everything under PREFIX with `files`, as `aws s3 sync --delete` of an export folder does."""
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=data)
    return f"s3://{bucket}/{PREFIX}"


def _folder(model: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(zoo.model_dir(model).iterdir()) if p.is_file()}


def _settings(uri: str, cache: Path) -> Settings:
    return from_s3(uri, cache, SERVING_RUNTIME="litert")  # the quicker load: what is served matters, not how


def _serves_golden(app: Any, ctx: Any, model: str) -> None:
    for case in zoo.cases(model)[:3]:
        status, body = call(app, ctx, "POST", "/predict", case["request"])
        assert status == 200, f"{model}/{case['name']}: {status} {body}"
        zoo.check_v1(model, case, body, f"{model} served from MODEL_S3_URI")


def test_another_model_exported_to_the_same_uri_is_served_at_the_next_cold_start(
    s3: Any, bucket: str, tmp_path: Path, start_app: Any, lambda_context: Any
) -> None:
    uri = _publish(s3, bucket, _folder("churn"))
    first = start_app(_settings(uri, tmp_path))
    assert first.startup_error is None, first.startup_error
    _serves_golden(first, lambda_context, "churn")
    churn_dir = first.service.artifacts.model_dir  # read now: `first` shows whichever function started last

    _publish(s3, bucket, _folder("reviews"))
    second = start_app(_settings(uri, tmp_path))
    assert second.startup_error is None, second.startup_error
    assert second.service.name == "reviews", f"the cold start after the re-export serves {second.service.name}"
    _serves_golden(second, lambda_context, "reviews")
    # The new manifest got a folder of its own, beside the old one: never the old files under a new name.
    assert second.service.artifacts.model_dir != churn_dir and (churn_dir / "preprocessing.json").is_file()


def test_the_same_model_re_exported_with_a_new_version_is_served_at_the_next_cold_start(
    s3: Any, bucket: str, tmp_path: Path, start_app: Any, lambda_context: Any
) -> None:
    files = _folder("churn")
    uri = _publish(s3, bucket, files)
    first = start_app(_settings(uri, tmp_path))
    status, body = call(first, lambda_context, "GET", "/v1/models/churn")
    assert (status, [v["version"] for v in body.get("model_version_status", [])]) == (200, ["1"]), (status, body)

    manifest = json.loads(files["manifest.json"])
    manifest["model"]["version"] = "2"  # the files are the same, so every hash still holds: a valid artifact
    manifest[DIGEST_KEY] = manifest_digest(manifest)  # as the export writes it
    _publish(s3, bucket, {**files, "manifest.json": json.dumps(manifest, indent=1).encode()})
    second = start_app(_settings(uri, tmp_path))
    assert second.startup_error is None, second.startup_error
    status, body = call(second, lambda_context, "GET", "/v1/models/churn")
    assert (status, [v["version"] for v in body.get("model_version_status", [])]) == (200, ["2"]), (status, body)
    _serves_golden(second, lambda_context, "churn")

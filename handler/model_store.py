"""MODEL_S3_URI -> a local model directory whose every file matches the manifest's sha256.

`s3://bucket/prefix/` holds the files `handler.export` writes. At init the manifest is read
first; each file it lists is downloaded into a fresh folder under the cache directory while its
sha256 is computed, and a file that is missing or differs from the manifest is refused by name
before anything is loaded. Only when every file matches is the folder renamed, in one step, to
`skewless-model-<manifest hash>/`: a folder of that name is always complete. A later init in the
same sandbox with the same manifest reuses it (`Artifacts.open` checks the hashes again anyway).

Every failure (S3 unreachable, access denied, an object missing, a hash mismatch) is an
`ArtifactError` naming the file and the fix, never a boto3 exception: the app then answers 503
with the reason instead of crashing its init.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from handler.core.artifacts import MANIFEST_FILE, is_code_file
from handler.errors import ArtifactError, ModelSourceError

DIR_PREFIX = "skewless-model-"
_BLOCK = 1 << 20


def parse_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, "prefix/"); the prefix is "" for the bucket's root."""
    if not uri.startswith("s3://"):
        raise ModelSourceError(f"MODEL_S3_URI={uri!r} must look like s3://bucket/prefix/")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ModelSourceError(f"MODEL_S3_URI={uri!r} names no bucket: use s3://bucket/prefix/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def make_client(timeout: int, max_attempts: int) -> Any:
    """An S3 client with a short connect/read timeout and few retries, so a dead source fails fast."""
    import boto3
    from botocore.config import Config

    from handler.aws import _custom_endpoint

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        s3={"addressing_style": "path"} if _custom_endpoint("s3") else None,
    )
    return boto3.session.Session().client("s3", config=config)


def fetch_model(uri: str, cache_dir: Path, s3: Any) -> Path:
    """Download the manifest and every file it lists; return the verified local directory."""
    bucket, prefix = parse_uri(uri)
    manifest_bytes = _get(s3, bucket, prefix, MANIFEST_FILE, uri)
    try:
        files = json.loads(manifest_bytes)["files"]
        listed = {str(name): str(digest) for name, digest in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{uri}{MANIFEST_FILE} is not a valid skewless manifest: {exc!r}") from None
    for name in listed:
        # A manifest must not make us write outside the model folder: plain names, or bundled code/ sources.
        plain = name and "/" not in name and "\\" not in name and name not in (".", "..") and name != MANIFEST_FILE
        if not plain and not is_code_file(name):
            raise ArtifactError(
                f"{uri}{MANIFEST_FILE} lists the file {name!r}: artifact names must be plain file names, "
                f"or code/ files of importable Python source"
            )
    # Keyed by the manifest's bytes, not the URI: a re-export to the same URI lists other hashes, so it gets
    # a folder of its own. The manifest is read anyway, so this costs nothing; an ETag changes with the
    # upload's part size or encryption, and a version id needs a versioned bucket.
    final = cache_dir / (DIR_PREFIX + hashlib.sha256(manifest_bytes).hexdigest()[:16])
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".partial-" + DIR_PREFIX, dir=cache_dir))
    try:
        for name, expected in sorted(listed.items()):
            (work / name).parent.mkdir(parents=True, exist_ok=True)  # code/ files keep their folders
            actual = _download(s3, bucket, prefix, name, uri, work / name)
            if actual != expected:
                raise ArtifactError(
                    f"artifact {name} at {uri}{name} does not match {MANIFEST_FILE} (sha256 {actual[:12]}..., "
                    f"expected {expected[:12]}...): it was changed after export; upload the exported files again"
                )
        (work / MANIFEST_FILE).write_bytes(manifest_bytes)
        try:
            os.rename(work, final)
        except OSError:
            if not final.is_dir():  # another process finished the same download first: keep theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _get(s3: Any, bucket: str, prefix: str, name: str, uri: str) -> bytes:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
    except Exception as exc:
        raise _source_error(exc, name, uri) from exc
    return body


def _download(s3: Any, bucket: str, prefix: str, name: str, uri: str, dest: Path) -> str:
    """Stream one object to `dest`; returns its sha256."""
    h = hashlib.sha256()
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        with dest.open("wb") as fh:
            for block in body.iter_chunks(_BLOCK):
                h.update(block)
                fh.write(block)
    except Exception as exc:
        raise _source_error(exc, name, uri) from exc
    return h.hexdigest()


def _source_error(exc: Exception, name: str, uri: str) -> ArtifactError:
    """A boto3/botocore failure -> our error, naming the file and what to check."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            if name == MANIFEST_FILE:
                return ModelSourceError(
                    f"{uri}{name} not found: MODEL_S3_URI must name the folder holding the files written by "
                    f"handler.export"
                )
            return ModelSourceError(f"artifact {name} listed in {MANIFEST_FILE} is missing from {uri}")
        if code == "NoSuchBucket":
            return ModelSourceError(f"the bucket of MODEL_S3_URI={uri} does not exist")
        if code in ("AccessDenied", "403", "Forbidden"):
            return ModelSourceError(f"access denied reading {uri}{name}: grant the function s3:GetObject on {uri}*")
        return ModelSourceError(f"S3 refused {uri}{name} ({code}): the model cannot be fetched")
    if isinstance(exc, BotoCoreError | OSError):
        return ModelSourceError(
            f"could not reach S3 to read {uri}{name} ({type(exc).__name__}): check the network, the endpoint "
            f"and MODEL_S3_URI; the next cold start tries again"
        )
    return ModelSourceError(f"could not read {uri}{name} ({type(exc).__name__})")

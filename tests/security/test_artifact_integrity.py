"""Nothing is loaded that the manifest does not vouch for: safe mode holds, S3 copies are hash-checked."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path
from typing import Any

import pytest

from handler import model_store
from handler.core.artifacts import Artifacts
from handler.core.model import load_tensorflow_forward
from handler.errors import ArtifactError, ModelLoadError
from handler.settings import Settings
from tests.bootstrap.test_model_loading_faults import PREDICT, assert_down, call, from_s3, upload_artifacts
from tests.support import zoo
from tests.support.faults import rehash


def test_a_model_with_a_python_lambda_layer_is_refused_by_safe_mode(
    artifacts_copy: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    import keras

    (width,) = Artifacts.open(artifacts_copy).signature.inputs[0].shape
    assert width is not None

    def constant_half(x: Any) -> Any:  # a named function, not a lambda: safe mode refuses it all the same
        return x[:, :1] * 0.0 + 0.5

    evil = keras.Sequential([keras.Input((width,), name="features"), keras.layers.Lambda(constant_half)])
    evil.save(artifacts_copy / "model.keras")
    rehash(artifacts_copy)  # a consistent manifest: the hashes cannot tell, only safe mode can

    with pytest.raises(
        ModelLoadError, match=r"a `keras.layers.Lambda` layer, whose Python code .* safe mode refuses it"
    ):
        load_tensorflow_forward(Artifacts.open(artifacts_copy))

    app = start_app(Settings.from_env({"MODEL_DIR": str(artifacts_copy), "SERVING_RUNTIME": "tensorflow"}))
    status, body = call(app, lambda_context, "POST", PREDICT, golden["cases"][0]["request"])
    assert status == 503 and body["error"] == ModelLoadError.public and "predictions" not in body, body
    assert_down(app, lambda_context, golden, "safe mode refuses it", "model_unavailable")


def test_an_artifact_tampered_in_s3_is_refused_by_name_before_use(
    s3: Any, bucket: str, tmp_path: Path, start_app: Any, golden: dict[str, Any], lambda_context: Any
) -> None:
    uri = upload_artifacts(s3, bucket)
    key = "models/churn/v1/model.keras"
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=data[:-1] + bytes([data[-1] ^ 1]))  # one bit

    app = start_app(from_s3(uri, tmp_path))
    assert isinstance(app.startup_error, ArtifactError)
    reason = f"artifact model.keras at {uri}model.keras does not match manifest.json"
    assert reason in app.startup_error.message
    assert_down(app, lambda_context, golden, reason, "artifacts_invalid")
    assert not any(tmp_path.iterdir()), "the tampered download was kept"


@pytest.mark.parametrize("name", ["../escape.json", "sub/dir.json", ".."])
def test_a_manifest_cannot_make_the_download_write_outside_its_folder(
    name: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    uri = upload_artifacts(s3, bucket)
    manifest = json.loads((zoo.model_dir("churn") / "manifest.json").read_text())
    payload = b'{"escaped": true}'
    manifest["files"][name] = hashlib.sha256(payload).hexdigest()  # the hash matches: only the name can stop it
    s3.put_object(Bucket=bucket, Key="models/churn/v1/manifest.json", Body=json.dumps(manifest).encode())
    # An object where the name points, so that following the name would succeed: an escape would be seen.
    escaped_key = posixpath.normpath(f"models/churn/v1/{name}")
    s3.put_object(Bucket=bucket, Key=escaped_key, Body=payload)
    with pytest.raises(ArtifactError, match="artifact names must be plain file names"):
        model_store.fetch_model(uri, tmp_path / "cache", s3)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], f"files written despite the refusal: {written}"

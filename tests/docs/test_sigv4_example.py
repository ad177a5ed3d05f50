"""The README's SigV4 example signs a request the HTTP API's IAM auth accepts (issue 23).

The example is run as the README shows it (botocore, AWS's example keys, no network). Its headers are read back
and the signature is computed again here by hand, from AWS's Signature Version 4 steps (canonical request, string
to sign, the derived key), over the method, the path, the host, the date, the content type and the body: an
Authorization that botocore put together differently (another service, region, scope or payload) would differ.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.docs import snippets
from tests.docs.snippets import ROOT


def _example() -> snippets.Block:
    (block,) = [b for b in snippets.blocks(ROOT / "README.md") if "SigV4Auth" in b.text]
    assert block.kind == "python", "the example runs as pasted (tests/docs/test_snippets.py runs it too)"
    return block


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(_example().text, "README.md", "exec"), namespace)  # the README's own example, as pasted
    return namespace


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def test_the_request_carries_a_sigv4_authorization_for_execute_api(example: dict[str, Any]) -> None:
    headers = example["headers"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", headers["X-Amz-Date"]), headers
    m = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(\d{8})/eu-west-1/execute-api/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        headers["Authorization"],
    )
    assert m, headers["Authorization"]
    assert m[1] == headers["X-Amz-Date"][:8], "the credential scope is the signing date's"
    assert {"host", "x-amz-date", "content-type"} <= set(m[2].split(";")), m[2]
    assert "X-Amz-Security-Token" not in headers, "long-term keys carry no session token"


def test_the_signature_is_sigv4_over_the_method_path_host_date_and_body(example: dict[str, Any]) -> None:
    headers, url, body = example["headers"], example["url"], example["body"]
    credentials = example["credentials"]
    parts = urlsplit(url)
    amz_date = headers["X-Amz-Date"]
    signed = {"content-type": headers["Content-Type"], "host": parts.netloc, "x-amz-date": amz_date}
    names = ";".join(sorted(signed))
    canonical = "\n".join(
        [
            "POST",
            quote(parts.path, safe="/~"),
            parts.query,
            "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)),
            names,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/eu-west-1/execute-api/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (amz_date[:8], "eu-west-1", "execute-api", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )

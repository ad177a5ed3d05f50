"""`make run` passes compression through as API Gateway does: a request's Content-Encoding reaches the event with
its body base64-encoded, and a gzip'd answer goes out as bytes with its Content-Encoding. curl (written by
others) with `--compressed`, and with a gzip'd or deflate'd body, gets training's answers.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from handler.local_server import http_api_event, http_response
from tests.support import zoo
from tests.support.clients import serving

BIG = "batch_of_8"  # a digits answer of about 1.9 KB: gzip'd for a client that asks
SMALL = "one_image_row"


def test_a_compressed_request_reaches_the_event_base64_encoded_with_its_content_encoding() -> None:
    raw = gzip.compress(b'{"instances": []}')
    headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    event = http_api_event("POST", "/predict", headers, raw, "127.0.0.1", "h")
    assert event["headers"]["content-encoding"] == "gzip"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw
    plain = http_api_event("POST", "/predict", [*headers[:1], ("Content-Encoding", "identity")], b"{}", "::1", "h")
    assert plain["isBase64Encoded"] is False and plain["body"] == "{}"


def test_a_gzipd_answer_goes_out_as_bytes_with_its_content_encoding() -> None:
    raw = gzip.compress(b'{"predictions": [[0.5]]}')
    result = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }
    status, headers, body = http_response(result)
    assert (status, body) == (200, raw)
    assert ("Content-Encoding", "gzip") in headers and ("Vary", "Accept-Encoding") in headers


def _curl(tmp_path: Path, url: str, body: bytes, *options: str) -> tuple[dict[str, str], bytes]:
    """(response headers, body as curl gives it) for a POST of `body` with curl's `options`."""
    curl = shutil.which("curl")
    assert curl, "curl is not installed: these tests run the real curl against the local server"
    sent, head, out = tmp_path / "body", tmp_path / "headers", tmp_path / "out"
    sent.write_bytes(body)
    args = [curl, "-s", "-S", "--max-time", "120", "-D", str(head), "-o", str(out), "--data-binary", f"@{sent}"]
    done = subprocess.run([*args, "-H", "Content-Type: application/json", *options, url], capture_output=True)
    assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr.decode()[-500:]}"
    # The last header block: curl's own `Expect: 100-continue` for a large body brings a 100 Continue first.
    lines = head.read_text().strip().split("\n\n")[-1].splitlines()  # read_text: every \r\n is \n
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
    headers["status"] = lines[0].split()[1]
    return headers, out.read_bytes()


@pytest.fixture(scope="module")
def digits_url() -> Any:
    with serving(zoo.model_dir("digits")) as url:
        yield url


def _case(name: str) -> dict[str, Any]:
    return next(c for c in zoo.cases("digits") if c["name"] == name)


@pytest.mark.parametrize(
    "coding, pack",
    [(None, lambda b: b), ("gzip", gzip.compress), ("deflate", zlib.compress)],
    ids=["plain_body", "gzip_body", "deflate_body"],
)
def test_curl_compressed_gets_a_gzipd_golden_answer(
    tmp_path: Path, digits_url: str, coding: str | None, pack: Any
) -> None:
    url = f"http://{digits_url}/v1/models/digits:predict"
    sent_as = ["-H", f"Content-Encoding: {coding}"] if coding else []
    for name, gzipped in ((BIG, True), (SMALL, False)):
        case = _case(name)
        headers, body = _curl(tmp_path, url, pack(json.dumps(case["request"]).encode()), "--compressed", *sent_as)
        assert headers["status"] == "200", f"{name}: {headers} {body[:300]!r}"
        assert headers.get("content-encoding") == ("gzip" if gzipped else None), f"{name}: {headers}"
        zoo.check_v1("digits", case, json.loads(body), f"curl --compressed, {coding or 'plain'} body")


def test_curl_without_compressed_gets_the_answer_as_it_is(tmp_path: Path, digits_url: str) -> None:
    case = _case(BIG)
    headers, body = _curl(tmp_path, f"http://{digits_url}/predict", json.dumps(case["request"]).encode())
    assert headers["status"] == "200" and "content-encoding" not in headers, headers
    zoo.check_v1("digits", case, json.loads(body), "curl, no Accept-Encoding")


def test_curl_with_a_bomb_an_unknown_coding_or_garbage_gets_the_exact_status(tmp_path: Path, digits_url: str) -> None:
    url = f"http://{digits_url}/predict"
    bomb = gzip.compress(bytes(1 << 20), compresslevel=9) * 1024  # 1 GiB of zeros in about 1 MB
    for body, coding, status, code in (
        (bomb, "gzip", "413", "payload_too_large"),
        (b"not gzip", "gzip", "400", "bad_request"),
        (b"\x00\x01", "br", "415", "unsupported_media_type"),
    ):
        headers, answer = _curl(tmp_path, url, body, "-H", f"Content-Encoding: {coding}")
        assert (headers["status"], json.loads(answer)["code"]) == (status, code), f"{coding}: {headers} {answer!r}"

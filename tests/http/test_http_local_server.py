"""`make run`: the local server builds HTTP API v2 events, answers golden cases over real HTTP, stops cleanly."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from handler.core.golden import compare
from handler.local_server import http_api_event, http_response

ROOT = Path(__file__).resolve().parents[2]


def test_requests_become_http_api_v2_events_as_api_gateway_builds_them() -> None:
    headers = [
        ("Host", "127.0.0.1:3000"),
        ("Content-Type", "application/json"),
        ("X-Many", "a"),
        ("X-Many", "b"),
        ("Cookie", "session=abc; theme=dark"),
        ("User-Agent", "curl/8.5.0"),
    ]
    event = http_api_event(
        "POST", "/v1/models/churn:predict?a=1&a=2&b=", headers, b'{"instances": []}', "127.0.0.1", "127.0.0.1:3000"
    )
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/v1/models/churn:predict" and event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"]["x-many"] == "a,b" and "cookie" not in event["headers"]
    assert event["cookies"] == ["session=abc", "theme=dark"]
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/v1/models/churn:predict",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "curl/8.5.0",
    }
    assert ctx["stage"] == "$default" and ctx["requestId"] and abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
    assert event["body"] == '{"instances": []}' and event["isBase64Encoded"] is False

    binary = http_api_event("POST", "/predict", [("Content-Type", "application/octet-stream")], b"\x00\xff", "::1", "h")
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x00\xff"
    empty = http_api_event("GET", "/v2/health/live", [], b"", "127.0.0.1", "h")
    assert "body" not in empty and "queryStringParameters" not in empty and "cookies" not in empty


def test_handler_results_become_http_responses_as_api_gateway_sends_them() -> None:
    status, headers, body = http_response(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "cookies": ["c=1"],
            "body": base64.b64encode(b"hi").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (status, body) == (201, b"hi") and ("X-A", "1") in headers and ("Set-Cookie", "c=1") in headers
    # Format 2.0 turns a bare result into a 200 JSON answer.
    assert http_response({"predictions": [[0.5]]}) == (
        200,
        [("Content-Type", "application/json")],
        b'{"predictions": [[0.5]]}',
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m handler serve` in a subprocess, with its output drained in the background."""

    def __init__(self, port: int) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("serving on" in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("the server did not start:\n" + "".join(self.lines))

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server() -> Any:
    s = Server(_free_port())
    try:
        s.wait_ready()
        yield s
    finally:
        s.kill()


def test_served_api_answers_every_golden_case_over_http_and_stops_on_ctrl_c(
    server: Server, golden: dict[str, Any]
) -> None:
    ready = "".join(server.lines)
    assert (
        f"curl -s http://127.0.0.1:{server.port}/v1/models/churn:predict -H 'Content-Type: application/json'" in ready
    )
    tol = golden["tolerance"]
    for i, case in enumerate(golden["cases"]):
        path = "/v1/models/churn:predict" if i % 2 == 0 else "/predict"
        status, headers, body = server.request("POST", path, case["request"])
        assert status == 200, f"{case['name']}: {status} {body[:300]!r}"
        assert headers["Content-Type"] == "application/json"
        ok, diff, detail = compare(case["response"], json.loads(body), tol["atol"], tol["rtol"])
        assert ok, f"{case['name']} over HTTP differs from training: {detail}"

    status, headers, body = server.request("GET", "/v1/models/churn:predict")
    assert status == 405 and headers["Allow"] == "POST", body
    status, _, body = server.request("POST", "/predict", b'{"instances": [')
    assert status == 400 and b"not valid JSON" in body
    status, _, body = server.request("GET", "/v2/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True

    assert server.stop(signal.SIGINT) == 0
    out = "".join(server.lines)
    assert "skewless stopped" in out and "Traceback" not in out


def test_served_api_stops_cleanly_on_sigterm(server: Server) -> None:
    assert server.request("GET", "/v2/health/live")[0] == 200
    assert server.stop(signal.SIGTERM) == 0
    assert "skewless stopped" in "".join(server.lines)

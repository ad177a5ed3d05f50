"""`make run`: the local server builds HTTP API v2 events, answers every golden case of churn and of a zoo model over
real HTTP (v1 and OIP v2), answers errors with their exact status, and stops cleanly."""

from __future__ import annotations

import base64
import contextlib
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.local_server import http_api_event, http_response
from tests.support import zoo
from tests.support.golden_requests import v2_infer_body

ROOT = Path(__file__).resolve().parents[3]


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
    """`python -m handler serve` in a subprocess (MODEL_DIR set), with its output drained in the background."""

    def __init__(self, port: int, model: str, runtime: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MODEL_DIR": str(zoo.model_dir(model))}
        env["SERVING_RUNTIME"] = runtime
        self.port = port
        self.model = model
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
            with urllib.request.urlopen(req, timeout=60) as resp:
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


# churn on the default runtime choice (LiteRT where it passed at export), a zoo model on TensorFlow.
SERVED = [("churn", "auto"), ("recommender", "tensorflow")]


@contextlib.contextmanager
def _serving(model: str, runtime: str) -> Iterator[Server]:
    s = Server(_free_port(), model, runtime)
    try:
        s.wait_ready()
        yield s
    finally:
        s.kill()


@pytest.fixture(params=SERVED, ids=[m for m, _ in SERVED])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with _serving(*request.param) as s:
        yield s


@pytest.fixture
def recommender_server() -> Iterator[Server]:
    with _serving("recommender", "auto") as s:
        yield s


def _error(status: int, body: bytes, want_status: int, want_code: str) -> dict[str, Any]:
    assert status == want_status, f"expected {want_status}, got {status}: {body[:300]!r}"
    answer: dict[str, Any] = json.loads(body)
    assert answer["code"] == want_code and answer["error"], answer
    return answer


def test_served_api_answers_every_golden_case_over_http_and_stops_on_ctrl_c(server: Server) -> None:
    model = server.model
    ready = "".join(server.lines)
    assert (
        f"curl -s http://127.0.0.1:{server.port}/v1/models/{model}:predict -H 'Content-Type: application/json'" in ready
    ), ready
    for case in zoo.cases(model):
        for path in (f"/v1/models/{model}:predict", "/predict"):
            status, headers, body = server.request("POST", path, case["request"])
            assert status == 200, f"{case['name']} POST {path}: {status} {body[:300]!r}"
            assert headers["Content-Type"] == "application/json"
            zoo.check_v1(model, case, json.loads(body), f"local server POST {path}")
        v2 = v2_infer_body(model, case)
        if v2 is not None:
            status, _, body = server.request("POST", f"/v2/models/{model}/infer", v2)
            assert status == 200, f"{case['name']} v2: {status} {body[:300]!r}"
            zoo.check_v2(model, case, json.loads(body), "local server v2 infer")

    status, headers, body = server.request("GET", f"/v1/models/{model}:predict")
    _error(status, body, 405, "method_not_allowed")
    assert headers["Allow"] == "POST"
    status, _, body = server.request("POST", "/predict", b'{"instances": [')
    assert "not valid JSON" in _error(status, body, 400, "bad_request")["error"]
    status, _, body = server.request("POST", "/predict", b"[]")
    _error(status, body, 400, "bad_request")
    status, _, body = server.request("POST", "/v1/models/fraud:predict", zoo.cases(model)[0]["request"])
    _error(status, body, 404, "not_found")
    status, _, body = server.request("POST", "/predict", {"instances": []})
    _error(status, body, 422, "invalid_input")
    status, _, body = server.request("GET", "/v2/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True, body

    assert server.stop(signal.SIGINT) == 0
    out = "".join(server.lines)
    assert "skewless stopped" in out and "Traceback" not in out, out[-2000:]


def test_served_zoo_model_names_the_instance_and_input_of_a_bad_id(recommender_server: Server) -> None:
    server = recommender_server
    good = zoo.named_rows(zoo.cases("recommender")[0])[0]  # type: ignore[index]
    status, _, body = server.request("POST", "/predict", {"instances": [good, {**good, "item_id": 200}]})
    answer = _error(status, body, 422, "invalid_input")
    assert [(d["instance"], d["feature"]) for d in answer["details"]] == [(1, "item_id")], answer


def test_served_api_stops_cleanly_on_sigterm(server: Server) -> None:
    assert server.request("GET", "/v2/health/live")[0] == 200
    assert server.stop(signal.SIGTERM) == 0
    assert "skewless stopped" in "".join(server.lines)

"""`make run` under hostile clients, over raw sockets against `python -m handler serve`: a body too large is refused
from its Content-Length before it is sent, an invalid Content-Length is a 400, and idle or slow connections are cut
off while other clients are served.

Timings hold on a loaded machine (2 cores, two heavy jobs beside it): the server may be late, never early, so
each cut-off is asserted no sooner than its limit and within a wide margin after it.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from handler.local_connection import BODY_SECONDS, HEADER_SECONDS, IDLE_SECONDS, MIN_BODY_RATE
from tests.triggers.http.test_http_local_server import Server, _free_port

MAX_BODY = 4096
# How late the server may be on a loaded machine; and how early it may seem (clock steps, the first byte's delay).
LATE, EARLY = 20.0, 0.5
PREDICT = "/v1/models/churn:predict"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAX_BODY_BYTES", str(MAX_BODY))
        running = Server(_free_port(), "churn", "auto")
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the request's first byte to the connection's end

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    return sock


def _until_closed(sock: socket.socket, started: float, seconds: float = 60.0) -> Answer:
    """Everything the server sends until it closes the connection (within `seconds`), parsed as one answer."""
    data = b""
    sock.settimeout(seconds)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    took = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0]:
        return Answer(0, {}, b"", took)  # closed without a word
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), headers, body, took)


def _send(server: Server, raw: bytes) -> Answer:
    sock = _connect(server)
    with sock:
        started = time.monotonic()
        sock.sendall(raw)
        return _until_closed(sock, started)


def _post(headers: str, body: bytes = b"", path: str = PREDICT) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode() + body


def _refusal(answer: Answer, status: int, code: str) -> str:
    assert answer.status == status, f"expected {status}, got {answer.status}: {answer.headers} {answer.body[:300]!r}"
    assert answer.headers.get("Connection") == "close", answer.headers
    body = answer.json()
    assert body["code"] == code and isinstance(body["error"], str), body
    return str(body["error"])


def test_a_body_over_max_body_bytes_is_refused_from_its_content_length_without_being_read(server: Server) -> None:
    """Five clients announce 2 GB and send nothing: each gets its 413 at once, not after a body that never comes."""
    announce = _post("Content-Type: application/json\r\nContent-Length: 2000000000\r\n")
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(_send(server, announce))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(answers) == 5, answers
    for answer in answers:
        error = _refusal(answer, 413, "payload_too_large")
        assert error.startswith(f"the body is 2000000000 bytes, over MAX_BODY_BYTES={MAX_BODY}"), error
        assert answer.seconds < BODY_SECONDS, f"the 413 took {answer.seconds:.1f} s: was the body awaited?"

    # Expect: 100-continue is answered with the refusal itself: the client is never invited to send the body.
    expecting = _send(server, _post(f"Content-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n"))
    _refusal(expecting, 413, "payload_too_large")
    # A body of MAX_BODY_BYTES is read and reaches the function, which judges it (here: not JSON).
    body = b"{" + b" " * (MAX_BODY - 1)
    error = _refusal_or_answer(_send(server, _post(f"Content-Length: {len(body)}\r\nConnection: close\r\n", body)))
    assert "not valid JSON" in error, error


def _refusal_or_answer(answer: Answer) -> str:
    assert answer.status == 400, f"{answer.status}: {answer.body[:300]!r}"
    return str(answer.json()["error"])


@pytest.mark.parametrize(
    "content_length",
    ["Content-Length: abc", "Content-Length: -5", "Content-Length: 1.5", "Content-Length: 5, 6",
     "Content-Length: 5\r\nContent-Length: 6", "Content-Length: "],
    ids=["text", "negative", "fraction", "two-in-one", "two-lines", "empty"],
)  # fmt: skip
def test_an_invalid_content_length_is_a_400_that_says_so(server: Server, content_length: str) -> None:
    answer = _send(server, _post(f"Content-Type: application/json\r\n{content_length}\r\n", b'{"a": 1}'))
    error = _refusal(answer, 400, "bad_request")
    assert "Content-Length" in error, error
    assert "Traceback" not in "".join(server.lines), "".join(server.lines)[-2000:]


def test_one_content_length_repeated_is_taken_and_chunked_bodies_are_refused(server: Server) -> None:
    body = b'{"instances": []}'
    same = _send(server, _post(f"Content-Length: {len(body)}, {len(body)}\r\nConnection: close\r\n", body))
    assert same.status == 422 and same.json()["code"] == "invalid_input", same  # the function judged the body
    chunked = _send(server, _post("Transfer-Encoding: chunked\r\n", b"11\r\n" + body + b"\r\n0\r\n\r\n"))
    _refusal(chunked, 411, "length_required")


def _trickle(server: Server, first: bytes, drip: bytes) -> Answer:
    """Send `first`, then one byte of `drip` a second, until the server answers and closes the connection."""
    sock = _connect(server)
    with sock:
        started = time.monotonic()
        sock.sendall(first)
        for byte in drip:
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        return _until_closed(sock, started)


def test_idle_and_slow_connections_are_cut_off_while_other_clients_are_served(server: Server) -> None:
    results: dict[str, Answer] = {}

    def idle() -> None:
        sock = _connect(server)
        with sock:
            results["idle"] = _until_closed(sock, time.monotonic())

    def slow_headers() -> None:
        results["headers"] = _trickle(server, b"POST /predict HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200)

    def slow_body() -> None:
        first = _post("Content-Type: application/json\r\nContent-Length: 200\r\n")
        results["body"] = _trickle(server, first, b" " * 200)

    clients = [threading.Thread(target=f) for f in (idle, slow_headers, slow_body)]
    for t in clients:
        t.start()
    time.sleep(1.0)
    # Meanwhile another client is served at once: the stalled connections hold no thread but their own.
    started = time.monotonic()
    status, _, body = server.request("GET", "/v2/health/live")
    assert (status, json.loads(body)) == (200, {"live": True}) and time.monotonic() - started < LATE
    for t in clients:
        t.join(timeout=120)

    cut = results["idle"]
    assert cut.status == 0 and cut.body == b"", f"an idle connection is closed without an answer: {cut}"
    assert IDLE_SECONDS - EARLY <= cut.seconds <= IDLE_SECONDS + LATE, f"idle for {cut.seconds:.1f} s"
    for name, limit in (("headers", HEADER_SECONDS), ("body", BODY_SECONDS + 200 / MIN_BODY_RATE)):
        answer = results[name]
        error = _refusal(answer, 408, "request_timeout")
        assert "too slowly" in error, error
        assert limit - EARLY <= answer.seconds <= limit + LATE, f"slow {name} cut off after {answer.seconds:.1f} s"
    log = "".join(server.lines)
    assert "request cut off" in log and "Traceback" not in log, log[-2000:]

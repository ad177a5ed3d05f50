"""The local server's connections (`make run`): a body judged by its Content-Length, and no client holding a thread.

A request handler thread serves one connection. Without limits, a client that connects and says nothing, sends
its headers a byte at a time, or announces 2 GB and sends nothing, holds its thread for ever, and a body was read
whole before its size was checked. Here:

- the body's size is judged from Content-Length before a byte of it is read: over MAX_BODY_BYTES is a 413, a
  Content-Length that is not one number of bytes a 400, a chunked body a 411, each answered at once;
- every read of a connection gets only what is left of its phase's time: IDLE_SECONDS waiting for a request,
  HEADER_SECONDS from its first byte to the end of its headers, and for the body BODY_SECONDS plus its size at
  MIN_BODY_RATE. A silent connection is closed; a request cut off in its headers or body is answered 408.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from handler.errors import BadRequest, PayloadTooLarge, SkewlessError

# Why these: a local client sends a request at once, so seconds are generous, and they bound how long a client
# that stalls can hold a thread. Waiting for a request (also between requests on a kept-alive connection):
IDLE_SECONDS = 5.0
# From the first byte of a request to the end of its headers (a whole request line and headers is a few KiB):
HEADER_SECONDS = 10.0
# For the body: this long, plus its size at MIN_BODY_RATE (6 MiB: 96 s more; loopback sends it in milliseconds).
BODY_SECONDS = 10.0
MIN_BODY_RATE = 64 << 10
# For the client to take the answer (the socket's timeout for every write).
WRITE_SECONDS = 30.0
# After a refusal whose body was not read: what the client still sends is drained (bounded), then the socket is
# closed. Closing with unread data would reset the connection, and the client could lose the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 << 20

_NUMBER = re.compile(r"[0-9]{1,18}")  # 18 digits: more than any body (a longer one is simply too large)


class Expired(Exception):
    """A request's headers or body did not arrive in time (not a TimeoutError: http.server drops those quietly)."""


class _Deadline(io.RawIOBase):
    """A connection's reads, each allowed only what is left of the current phase's time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.waiting = True  # for a request: its first byte starts the header clock

    def readable(self) -> bool:
        return True

    def expect(self, seconds: float, waiting: bool = False) -> None:
        self.deadline = time.monotonic() + seconds
        self.waiting = waiting

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("the connection's time is up")
            self.sock.settimeout(left)
            n = self.sock.recv_into(buffer)
        except TimeoutError:
            if self.waiting:
                raise  # nothing of a request came: http.server closes the connection
            raise Expired() from None
        finally:
            self.sock.settimeout(WRITE_SECONDS)  # whatever is written next gets its own time
        if n and self.waiting:
            self.expect(HEADER_SECONDS)
        return n


class Refused(Exception):
    """A request answered without reading its body: `status` and our error body."""

    def __init__(self, status: int, body: Mapping[str, object]) -> None:
        super().__init__(body.get("error"))
        self.status, self.body = status, body


def body_length(headers: Any, max_bytes: int) -> int:
    """The body's length from Content-Length (0 without one), or Refused saying what is wrong with it."""
    if headers.get("Transfer-Encoding") is not None:
        error = {
            "error": "send the body with a Content-Length: chunked transfer is not taken here",
            "code": "length_required",
        }
        raise Refused(411, error)
    sent = [part.strip() for value in headers.get_all("Content-Length") or [] for part in value.split(",")]
    if not sent:
        return 0
    bad = next((s for s in sent if not s.isascii() or not s.isdigit()), None)
    if bad is not None:
        raise _refused(BadRequest(f"Content-Length must be a number of bytes (0 or more), got {bad[:40]!r}"))
    if len({s.lstrip("0") for s in sent}) > 1:
        raise _refused(
            BadRequest(f"the request has different Content-Length values ({', '.join(sent)[:80]}): send one")
        )
    size = int(sent[0]) if _NUMBER.fullmatch(sent[0]) else max_bytes + 1
    if size > max_bytes:
        raise _refused(
            PayloadTooLarge(
                f"the body is {sent[0][:40]} bytes, over MAX_BODY_BYTES={max_bytes}: split the batch into smaller "
                f"requests"
            )
        )
    return size


def _refused(error: SkewlessError) -> Refused:
    return Refused(error.status, error.to_body())


def coded_limit(max_bytes: int, headers: Any) -> int:
    """The largest Content-Length that may hold `max_bytes` once decoded: a compressed body of data that does not
    compress is a little larger than the data (zstd's bound, the loosest of the codings: 1/256 more, and a few
    bytes)."""
    coding = (headers.get("Content-Encoding") or "identity").strip().lower()
    return max_bytes if coding in ("", "identity") else max_bytes + max_bytes // 256 + 1024


class GuardedHandler(BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler with the limits above; a subclass serves with `read_body` and `answer`."""

    max_body: int = 6 << 20

    def setup(self) -> None:
        super().setup()
        self._reader = _Deadline(self.connection)
        self.rfile = io.BufferedReader(self._reader, 64 << 10)
        self._linger = False

    def handle_one_request(self) -> None:
        self._reader.expect(IDLE_SECONDS, waiting=True)
        try:
            super().handle_one_request()  # a silent connection's TimeoutError is handled there: closed
        except Expired:
            self.log_error("request cut off: its headers or body came too slowly")
            body = {
                "error": "the request came too slowly: send its headers and body at once",
                "code": "request_timeout",
            }
            self.refuse(Refused(408, body))
        except Refused as refusal:
            self.refuse(refusal)

    def handle_expect_100(self) -> bool:
        # Judge the body before inviting it: a refused body is never sent.
        body_length(self.headers, coded_limit(self.max_body, self.headers))
        return super().handle_expect_100()

    def read_body(self) -> bytes:
        """The request's body, read within its time once its Content-Length is judged (Refused otherwise)."""
        length = body_length(self.headers, coded_limit(self.max_body, self.headers))
        if not length:
            return b""
        self._reader.expect(BODY_SECONDS + length / MIN_BODY_RATE)
        body = self.rfile.read(length)
        if len(body) < length:  # the client hung up before sending all it announced
            raise Refused(400, BadRequest(f"the body ended after {len(body)} of {length} bytes").to_body())
        return body

    def answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)  # also sends Server and Date
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def refuse(self, refusal: Refused) -> None:
        """Answer a request whose body was not read, then close the connection (after draining what comes)."""
        self.close_connection = True
        self._linger = True
        try:
            payload = json.dumps(refusal.body).encode()
            self.answer(refusal.status, [("Content-Type", "application/json")], payload)
        except OSError:
            pass  # the client is gone: nothing to answer

    def finish(self) -> None:
        super().finish()
        if self._linger:
            _drain(self.connection)


def _drain(sock: socket.socket) -> None:
    """Stop sending, and read what the client still sends for a while, so that closing does not reset it."""
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    try:
        sock.shutdown(socket.SHUT_WR)
        while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(64 << 10)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:  # a timeout, or the client gone
        return

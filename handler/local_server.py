"""`make run`: a local HTTP server that turns each request into an HTTP API (v2 payload) event.

The event is built the way API Gateway builds it for a `$default` route, and goes through the
real `lambda_handler`; the handler's answer is written back the way API Gateway would. No AWS
account, no Docker. A body over MAX_BODY_BYTES is refused from its Content-Length before it is read, and
idle or slow connections are cut off (`local_connection.py`).
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from handler import local_connection as connection

DEFAULT_PORT = 3000
FUNCTION_NAME = "skewless-local"

# Content types API Gateway passes as text; any other body arrives base64-encoded.
_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


@dataclass
class LocalContext:
    """A stand-in for the Lambda context object, with a fresh request id per invocation."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "local"
    timeout_seconds: float = 30.0
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._start)) * 1000))


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    ct = content_type.split(";")[0].strip().lower()
    return ct.startswith(_TEXT_TYPES) or ct.endswith("+json") or ct.endswith("+xml")


def http_api_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    host: str,
    protocol: str = "HTTP/1.1",
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event for one request, as API Gateway builds it."""
    url = urlsplit(target)
    raw_path = url.path or "/"
    merged, cookies = _merged_headers(headers)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": url.query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if url.query:
        params: dict[str, str] = {}
        for k, v in parse_qsl(url.query, keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "http": {
            "method": method,
            "path": unquote(raw_path),
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode().rstrip("="),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if body:
        # A compressed body is bytes whatever its type: it reaches the function base64-encoded, with its
        # Content-Encoding, as API Gateway passes a binary body.
        coding = merged.get("content-encoding", "identity").strip().lower()
        text = _is_text(merged.get("content-type")) and coding in ("", "identity")
        event["body"] = body.decode("utf-8", "replace") if text else base64.b64encode(body).decode()
        event["isBase64Encoded"] = not text
    else:
        event["isBase64Encoded"] = False
    return event


def _merged_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """(headers by lower-case name, cookies): format 2.0 has no multiValueHeaders, so repeats are comma-joined."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged, cookies


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """What API Gateway sends the client for a handler's result (payload format 2.0 rules)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Format 2.0 infers a 200 JSON answer from anything that is not a response object.
        payload = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], payload.encode()
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((k, str(v)) for v in values)
    headers.extend(("Set-Cookie", c) for c in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


Handler = Callable[[dict[str, Any], Any], Any]


def make_request_handler(handler: Handler, max_body_bytes: int) -> type[BaseHTTPRequestHandler]:
    """A request handler class that sends every request through `handler` as an HTTP API event.

    The body is judged by its Content-Length before any of it is read (over `max_body_bytes`: 413; not one
    number of bytes: 400), and a connection that is idle or sends slower than `local_connection.py`'s limits is
    cut off: neither holds a thread for long.
    """
    # One invocation at a time, as one Lambda execution environment runs them (and Powertools'
    # resolvers and metrics keep per-invocation state that is not thread-safe).
    invoke_lock = threading.Lock()

    class RequestHandler(connection.GuardedHandler):
        server_version = "skewless-local"
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, a keep-alive client waits
        # for the delayed ACK (about 40 ms) before the body arrives.
        disable_nagle_algorithm = True
        max_body = max_body_bytes

        def _serve(self) -> None:
            body = self.read_body()  # judged by its Content-Length first: a refusal is answered by the base class
            event = http_api_event(
                self.command,
                self.path,
                list(self.headers.items()),
                body,
                source_ip=str(self.client_address[0]),
                host=self.headers.get("Host") or "127.0.0.1",
                protocol=self.request_version,
            )
            try:
                with invoke_lock:
                    result = handler(event, LocalContext())
                status, headers, payload = http_response(result)
            except Exception as exc:  # as API Gateway does when the function errors
                self.log_error("handler raised %r", exc)
                status, headers, payload = (
                    502,
                    [("Content-Type", "application/json")],
                    b'{"message":"Internal Server Error"}',
                )
            self.answer(status, headers, payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    return RequestHandler


class LocalServer(ThreadingHTTPServer):
    """A thread per connection; a listen backlog that holds a burst of clients connecting at once."""

    # socketserver's default of 5 dropped 2-48 of 128 connections opened at once (httpx's AsyncClient: ReadError).
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up or went silent is one line, not a traceback; anything else keeps its trace.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            sys.stderr.write(f"{client_address[0]} - connection dropped: {error!r}\n")
            return
        super().handle_error(request, client_address)


def serve(
    handler: Handler,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    ready_hint: str = "",
    max_body_bytes: int | None = None,
) -> int:
    """Serve until Ctrl-C or SIGTERM; return the exit code. `max_body_bytes`: MAX_BODY_BYTES unless given."""
    if max_body_bytes is None:
        from handler.settings import Settings

        max_body_bytes = Settings.from_env().max_body_bytes
    server = LocalServer((host, port), make_request_handler(handler, max_body_bytes))

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    url = f"http://{host}:{server.server_address[1]}"
    print(f"skewless serving on {url} (Ctrl-C to stop)", flush=True)
    if ready_hint:
        print(ready_hint.replace("{url}", url), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("skewless stopped", flush=True)
    return 0

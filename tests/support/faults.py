"""Fault injection helpers: a moto server in its own process that a test can kill and restart on the
same port, S3 clients with short timeouts, and the Lambda app started with settings of the test's choosing."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from handler.settings import Settings
from tests.support.artifacts import rehash  # noqa: F401  (the suites import it from here)
from tests.support.moto_s3 import REGION


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoProcess:
    """moto's S3/SQS server as a separate process on a fixed loopback port: kill it, start it again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-response, as a crashed or partitioned endpoint does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def client(self, kind: str = "s3", timeout: float = 2, attempts: int = 2) -> Any:
        return fast_client(self.endpoint, kind, timeout, attempts)


def fast_client(endpoint: str, kind: str = "s3", timeout: float = 2, attempts: int = 2) -> Any:
    """A boto3 client for a loopback endpoint that gives up quickly (a dead server fails in seconds)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "max_attempts": attempts},
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(
        kind,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


@pytest.fixture
def moto_proc() -> Iterator[MotoProcess]:
    server = MotoProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class StartedApp:
    """`handler.app` after an init with other settings: its `lambda_handler`, service and startup error."""

    def __init__(self, module: ModuleType) -> None:
        self.lambda_handler = module.lambda_handler
        self.function = module.function

    @property
    def service(self) -> Any:
        return self.function.service

    @property
    def startup_error(self) -> Any:
        return self.function.startup_error


@pytest.fixture
def start_app(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the function's init with the given settings in `handler.app`, as a new container would, so
    `handler.app.lambda_handler` answers with it; the module's own function comes back after the test."""
    import handler.app as app

    def start(chosen: Settings) -> StartedApp:
        fresh = app.Function(chosen)
        for attr in ("settings", "service", "startup_error", "http_api"):
            monkeypatch.setattr(app.function, attr, getattr(fresh, attr))
        return StartedApp(app)

    return start


def copy_artifacts(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class CuttableProxy:
    """A loopback TCP proxy in front of a server: `cut()` drops every connection and refuses new ones (the
    endpoint goes dark mid-transfer while the server keeps its state); `restore()` serves again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.cuts = 0

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.cuts += 1

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class ResettingProxy(CuttableProxy):
    """A proxy that resets one connection (a TCP RST) once it has passed `arm(n)` bytes of an answer, then serves
    on: a connection reset mid-body, which the server cannot make itself."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self._after: int | None = None
        self.resets = 0

    def arm(self, after_bytes: int) -> None:
        self._after = after_bytes

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        sent = 0
        try:
            while data := upstream.recv(1 << 16):
                after = self._after
                if after is not None and sent + len(data) > after:
                    self._after = None  # once
                    client.sendall(data[: max(after - sent, 0)])
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()  # with SO_LINGER 0: an RST, not a FIN
                    upstream.close()
                    self.resets += 1
                    return
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (upstream, client):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def resetting_moto(moto_proc: MotoProcess) -> Iterator[ResettingProxy]:
    proxy = ResettingProxy(moto_proc.port)
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()


@pytest.fixture
def proxied_moto(moto_proc: MotoProcess) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(moto_proc.port)
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()

"""The Lambda runtime interface emulator on the host, running our handler with awslambdaric."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.samcli import ROOT

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Invocation:
    status: int
    body: Any
    seconds: float

    def __str__(self) -> str:
        """What came back, for assertion messages: the status, the time it took and the body."""
        return f"status {self.status} after {self.seconds:.2f} s, body {self.body!r:.2000}"

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or an AssertionError saying what came back instead (a timeout's text, say)."""
        assert isinstance(self.body, dict), f"the answer is not a JSON object: {self}"
        return self.body


class RuntimeEmulator:
    """`aws-lambda-rie ... python -m awslambdaric HANDLER` on a free 127.0.0.1 port, from `cwd` (the repo dir)."""

    def __init__(
        self,
        rie: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        handler: str = "handler.app.lambda_handler",
        cwd: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}{INVOKE_PATH}"
        full_env = {
            **os.environ,
            "AWS_LAMBDA_FUNCTION_NAME": "skewless-rie",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
            # The template's default Timeout: a cold TensorFlow load on a loaded machine stays far below it.
            "AWS_LAMBDA_FUNCTION_TIMEOUT": "60",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "skewless-rie",
            **(env or {}),
        }
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(rie),
                    "--runtime-interface-emulator-address",
                    f"127.0.0.1:{self.port}",
                    # Its own Runtime API port too (default 127.0.0.1:9001): two emulators may run at once.
                    "--runtime-api-address",
                    f"127.0.0.1:{free_port()}",
                    sys.executable,
                    "-m",
                    "awslambdaric",
                    handler,
                ],
                cwd=cwd,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the emulator did not listen on 127.0.0.1:{self.port}:\n{self.log()}")

    def invoke(self, event: Any, timeout: float = 120) -> Invocation:
        """POST the event to the invocation endpoint, as `aws lambda invoke` would send it.

        `timeout` outlasts the function's own, so a call that runs too long comes back as the emulator's
        'Task timed out' answer; no answer at all is an AssertionError with the emulator's log.
        """
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except (urllib.error.URLError, TimeoutError) as err:
            seconds = time.perf_counter() - start
            raise AssertionError(f"no answer from the emulator after {seconds:.1f} s ({err}):\n{self.log()}") from None
        seconds = time.perf_counter() - start
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        return Invocation(status, body, seconds)

    def log(self) -> str:
        """The end of the log, for assertion messages."""
        return self.full_log()[-4000:]

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the emulator and the runtime it started (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> RuntimeEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

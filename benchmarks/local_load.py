"""The local server (`python -m handler serve`, what `make run` starts) under load, measured with wrk.

Why wrk (Debian's package, installed with apt by this module when missing, and recorded so that
`make clean-test-state` removes it): the machine has 2 cores, shared by the server and the client.
wrk is a C event loop that spends a few microseconds of CPU per request, so what it measures is the
server. A Python client would need about as much CPU per request as the server's own HTTP layer,
and on 2 cores it would take that CPU from the server it is measuring.

- keep-alive latency: one connection, `GET /v2/health/live` back to back; wrk's p50.
- throughput: 8 connections (8 concurrent clients), each posting one churn example to
  `/v1/models/churn:predict` as soon as its previous answer arrives; requests per second, and
  every error (socket errors, and any answer that is not 2xx).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.local_s3 import free_port

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_TRACE_DISABLED": "true"}
CLIENTS = 8


def ensure_wrk() -> str:
    """wrk's path; Debian's package is installed with apt when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    from tests.support.docker_engine import apt_install, silent_step

    print("installing Debian's wrk with apt (first run only, a few seconds)", flush=True)
    apt_install(["wrk"], silent_step, "first run only")
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's report (with --latency): requests/s, latency percentiles in ms, requests, errors."""

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * _UNITS[unit]

    percentiles = {f"p{p}": ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M)}
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),  # type: ignore[union-attr]
        "latency_ms": percentiles,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _wrk(wrk: str, url: str, connections: int, seconds: int, script: Path | None = None) -> dict[str, Any]:
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        args += ["-s", str(script)]
    run = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 60)
    return {**parse_wrk(run.stdout), "connections": connections, "seconds": seconds}


def _body() -> str:
    golden = json.loads((ROOT / "model_artifacts" / "churn" / "golden.json").read_text())
    rows = next(c for c in golden["cases"] if c["name"] == "batch_of_100")["request"]["instances"]
    return json.dumps({"instances": rows[:1]})


def local_server(seconds: int = 10, repeats: int = 3) -> dict[str, Any]:
    """Start `python -m handler serve`, measure latency and throughput with wrk, stop it."""
    wrk = ensure_wrk()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "handler", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **QUIET},
        stdout=subprocess.DEVNULL,  # one EMF line per prediction, as a terminal would get them
        stderr=subprocess.DEVNULL,  # one access-log line per request
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(port, "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the local server did not become ready")
            time.sleep(0.2)
        body = _body()
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "predict.lua"
            script.write_text(
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'
            )
            base = f"http://127.0.0.1:{port}"
            _wrk(wrk, f"{base}/v1/models/churn:predict", CLIENTS, 2, script)  # loads the model, warms up
            live = [_wrk(wrk, f"{base}/v2/health/live", 1, seconds) for _ in range(repeats)]
            predict = [_wrk(wrk, f"{base}/v1/models/churn:predict", CLIENTS, seconds, script) for _ in range(repeats)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"tool": f"wrk ({wrk})", "runtime": served_runtime(), "live_keepalive": live, "predict_8_clients": predict}


def served_runtime() -> str:
    """The runtime `make run` serves here (SERVING_RUNTIME, auto by default), chosen as the server chooses it."""
    from handler.core.artifacts import Artifacts
    from handler.core.model import choose_runtime
    from handler.settings import Settings

    settings = Settings.from_env()
    return choose_runtime(Artifacts.open(settings.model_dir), settings.serving_runtime)[0]


if __name__ == "__main__":
    print(json.dumps(local_server(seconds=3, repeats=1), indent=1))

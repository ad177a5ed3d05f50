"""Client libraries written by others, in their own venv (`.venv-clients`), and our local server for them.

tritonclient (and the KServe SDK beside it) pins ml-dtypes<=0.5.4 while TensorFlow here needs 0.6.0, so the
clients cannot share `.venv`: they run in a subprocess from `.venv-clients` (made here when missing, as
`make clients` makes it), against `python -m handler serve` started on a free loopback port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.samcli import ROOT

CLIENTS_VENV = ROOT / ".venv-clients"
REQUIREMENTS = ROOT / "scripts" / "requirements-clients.txt"


def clients_python() -> Path:
    """The Python of `.venv-clients`, with the pinned client libraries installed (made here if missing)."""
    python = CLIENTS_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import tritonclient.http, kserve"], capture_output=True)
        if probe.returncode == 0:
            return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CLIENTS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(model_dir: Path, cwd: Path = ROOT, base_env: Mapping[str, str] | None = None, **env: str) -> Iterator[str]:
    """`python -m handler serve` for one model on a free loopback port, from `cwd`; yields its base URL.

    `base_env`: the environment to start from (default: this process's).
    """
    port = _free_port()
    start = os.environ if base_env is None else base_env
    full_env = {**start, "MODEL_DIR": str(model_dir), "POWERTOOLS_TRACE_DISABLED": "true", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "handler", "serve", "--port", str(port)],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"python -m handler serve did not start (exit {proc.poll()})") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)

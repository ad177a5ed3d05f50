"""A Docker engine for the tests: the one already running, or dockerd started (and stopped) here.

A started engine gets its own socket and data folders under WORK_ROOT, which persist so a second
run reuses the images it built, and a proxy that refuses every connection, so that nothing is
pulled from a registry: a pull fails at once instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

WORK_ROOT = Path(os.environ.get("SKEWLESS_DOCKER_ROOT", "/var/tmp/skewless-docker"))
NO_REGISTRY_PROXY = "http://127.0.0.1:9"


def _client_for(dockerd: str) -> str:
    """The docker client shipped beside dockerd (same release), else the one on PATH."""
    beside = Path(dockerd).with_name("docker")
    return str(beside) if beside.exists() else (shutil.which("docker") or "docker")


def _engine_answers(client: str, env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(
            [client, "info", "--format", "{{.ServerVersion}}"], env=env, capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_dockerd_installed() -> str:
    """Path of dockerd, installing Debian's docker.io when it is missing."""
    found = shutil.which("dockerd")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "docker.io"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which("dockerd")
    if not found:
        raise RuntimeError("apt-get installed docker.io but dockerd is not on PATH")
    return found


@dataclass
class DockerEngine:
    client: str
    host: str
    started_pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.client, *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0

    def stop(self) -> None:
        """Stop dockerd if we started it (by its pid), waiting for it to exit."""
        if self.started_pid is None:
            return
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(300):
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                os.kill(self.started_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(self.started_pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()  # reap it: no zombie left behind
        self.started_pid = None


def start_engine() -> DockerEngine:
    """Use a running engine ($DOCKER_HOST or the default socket), or start our own dockerd."""
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        client = shutil.which("docker") or "docker"
        env = dict(os.environ)
        if _engine_answers(client, env):
            return DockerEngine(client=client, host=env.get("DOCKER_HOST", "unix:///var/run/docker.sock"), env=env)

    dockerd = ensure_dockerd_installed()
    client = _client_for(dockerd)
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    sock = WORK_ROOT / "docker.sock"
    host = f"unix://{sock}"
    env = {**os.environ, "DOCKER_HOST": host}
    if _engine_answers(client, env):  # ours, left over by an interrupted run: stop it and restart cleanly
        pid_file = WORK_ROOT / "exec" / "dockerd.pid"
        if pid_file.exists():
            DockerEngine(client, host, started_pid=int(pid_file.read_text())).stop()
    log_path = WORK_ROOT / "dockerd.log"
    daemon_env = {
        **os.environ,
        "HTTPS_PROXY": NO_REGISTRY_PROXY,
        "HTTP_PROXY": NO_REGISTRY_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                dockerd,
                "-H",
                host,
                "--data-root",
                str(WORK_ROOT / "data"),
                "--exec-root",
                str(WORK_ROOT / "exec"),
                "--pidfile",
                str(WORK_ROOT / "exec" / "dockerd.pid"),
            ],
            env=daemon_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    engine = DockerEngine(client=client, host=host, started_pid=proc.pid, process=proc, log_path=log_path, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}; see {log_path}")
        if _engine_answers(client, env):
            return engine
        time.sleep(0.5)
    engine.stop()
    raise RuntimeError(f"dockerd did not answer within 60 s; see {log_path}")

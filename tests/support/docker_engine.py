"""A Docker engine for the tests: the one already running, or dockerd started (and stopped) here.

A started engine gets its own socket and a proxy that refuses every connection, so that nothing is
pulled from a registry: a pull fails at once instead of hanging.

Two modes. By default its data folders under WORK_ROOT persist, so a second run reuses the images
it built. Under CI=true (or SKEWLESS_FRESH_ENGINE=1) every run starts from an empty data root (a
new folder, deleted at the end) and without a `docker0` bridge: what a fresh machine sees, so CI
cannot pass thanks to state an earlier run left behind.

`python -m tests.support.docker_engine clean` undoes what the tests installed and started here
(`make clean-test-state`); it needs only the standard library.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

WORK_ROOT = Path(os.environ.get("SKEWLESS_DOCKER_ROOT", "/var/tmp/skewless-docker"))
# Packages the tests apt-installed (absent before), one a line: `clean` removes exactly these.
APT_MARKER = WORK_ROOT / "apt-installed.txt"
NO_REGISTRY_PROXY = "http://127.0.0.1:9"
BRIDGE = "docker0"

# A long step: a context manager announcing WHAT (and how long it usually takes) while it runs.
Step = Callable[[str], AbstractContextManager[object]]


@contextmanager
def silent_step(what: str) -> Iterator[None]:
    yield


def fresh_engine_wanted() -> bool:
    truthy = ("1", "true", "yes")
    return os.environ.get("CI", "").lower() in truthy or os.environ.get("SKEWLESS_FRESH_ENGINE", "").lower() in truthy


# --- apt, with a record of what it added -----------------------------------------------------


def _installed_packages() -> set[str]:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${binary:Package}\n"], capture_output=True, text=True
    )
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("ii ")}


def _recorded_packages() -> set[str]:
    return set(APT_MARKER.read_text().split()) if APT_MARKER.exists() else set()


def apt_install(packages: list[str], step: Step, about: str) -> None:
    """apt-get install PACKAGES, recording every package that was not installed before (so
    `clean` can remove them, and never one the machine already had)."""
    before = _installed_packages()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *packages]
    try:
        with step(f"installing {' '.join(packages)} with apt ({about})"):
            if subprocess.run(install, env=env, capture_output=True).returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
                subprocess.run(install, env=env, check=True, capture_output=True)
    finally:  # a half-done install is recorded too
        added = _installed_packages() - before
        if added:
            WORK_ROOT.mkdir(parents=True, exist_ok=True)
            APT_MARKER.write_text("".join(f"{p}\n" for p in sorted(_recorded_packages() | added)))


def ensure_dockerd_installed(step: Step = silent_step) -> str:
    """Path of dockerd, installing Debian's docker.io when it is missing."""
    if not shutil.which("dockerd"):
        apt_install(["docker.io"], step, "first run only, about 10 s")
    found = shutil.which("dockerd")
    if not found:
        raise RuntimeError("apt-get installed docker.io but dockerd is not on PATH")
    return found


# --- processes and folders -------------------------------------------------------------------


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and argv[0]:
            yield int(entry.name), argv


def _is_engine_process(argv: list[str]) -> bool:
    name = os.path.basename(argv[0])
    return name in ("dockerd", "containerd") or name.startswith("containerd-shim")


def engine_pids_under(root: Path) -> list[int]:
    """dockerd, its containerd and shims started on folders under ROOT (ours), dockerd first."""
    needle = str(root).rstrip("/") + "/"
    found = [(pid, argv) for pid, argv in _processes() if _is_engine_process(argv) and any(needle in a for a in argv)]
    found.sort(key=lambda p: os.path.basename(p[1][0]) != "dockerd")
    return [pid for pid, _ in found]


def other_dockerd_pids(root: Path) -> list[int]:
    """dockerd processes that are not ours: they own docker0, so it must stay."""
    mine = set(engine_pids_under(root))
    return [pid for pid, argv in _processes() if os.path.basename(argv[0]) == "dockerd" and pid not in mine]


def _gone(pid: int) -> bool:
    """Exited, or a zombie that only its parent can reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int, grace: float = 30) -> None:
    """SIGTERM, then SIGKILL after GRACE seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)


def stop_leftover_engines(root: Path = WORK_ROOT) -> list[int]:
    """Stop, by pid, every engine process an interrupted run left on folders under ROOT.
    dockerd goes first: it stops its own containerd; what remains after it is stopped too."""
    stopped = []
    for pid in engine_pids_under(root):
        if not _gone(pid):
            stop_pid(pid)
            stopped.append(pid)
    return stopped


def _mount_points_under(root: Path) -> list[str]:
    needle = str(root).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # "\040" is a space
        if point == needle or point.startswith(needle + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf PATH, after detaching any mount below it (overlay2 layers, a debootstrap /proc):
    deleting through a mount would delete the mounted files."""
    if not path.exists():
        return
    for point in _mount_points_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mount_points_under(path)
    if left:
        raise RuntimeError(f"not deleting {path}: still mounted below it: {left}")
    shutil.rmtree(path)


def bridge_exists() -> bool:
    return Path("/sys/class/net", BRIDGE).exists()


def delete_bridge() -> None:
    """`ip link delete docker0`: dockerd re-creates it, as on a machine that never ran Docker."""
    if not shutil.which("ip"):
        raise RuntimeError(f"{BRIDGE} exists and deleting it needs `ip` (Debian's iproute2)")
    subprocess.run(["ip", "link", "delete", BRIDGE], check=True, capture_output=True, text=True)


# --- the engine ------------------------------------------------------------------------------


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


@dataclass
class DockerEngine:
    client: str
    host: str
    started_pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Where this run keeps its files (the base image's rootfs, ...); WORK_ROOT for an engine not ours.
    folder: Path = WORK_ROOT
    # A fresh engine's folder (data root included) is deleted when it stops.
    scratch: bool = False

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.client, *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0

    def stop(self) -> None:
        """Stop dockerd if we started it (by its pid, reaping it), then delete a fresh engine's folder."""
        if self.started_pid is not None:
            stop_pid(self.started_pid)
            if self.process is not None:
                self.process.wait()  # reap it: no zombie left behind
            self.started_pid = None
        if self.scratch:
            stop_leftover_engines(self.folder)  # a shim dockerd could not stop
            remove_tree(self.folder)


def _running_engine() -> DockerEngine | None:
    """The engine at $DOCKER_HOST or the default socket, when one answers."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return None
    client = shutil.which("docker") or "docker"
    env = dict(os.environ)
    if not _engine_answers(client, env):
        return None
    return DockerEngine(client=client, host=env.get("DOCKER_HOST", "unix:///var/run/docker.sock"), env=env)


def _prepare_fresh_folder() -> Path:
    """An empty folder for this run, and no docker0: refuses when another engine owns the bridge."""
    others = other_dockerd_pids(WORK_ROOT)
    if others:
        raise RuntimeError(
            f"CI=true / SKEWLESS_FRESH_ENGINE=1 start a fresh dockerd with no {BRIDGE} bridge, but another "
            f"dockerd (pid {', '.join(map(str, others))}) is running and owns {BRIDGE}. Stop it, or run "
            "without CI=true to use it."
        )
    if bridge_exists():
        delete_bridge()
    return Path(tempfile.mkdtemp(prefix="fresh-", dir=WORK_ROOT))


def start_engine(step: Step = silent_step, fresh: bool | None = None) -> DockerEngine:
    """A fresh dockerd (FRESH, by default under CI), else a running engine, else our dockerd on
    the persistent folder. A dockerd an interrupted run left is stopped first."""
    fresh = fresh_engine_wanted() if fresh is None else fresh
    if not fresh:
        running = _running_engine()
        if running is not None:
            return running

    dockerd = ensure_dockerd_installed(step)
    client = _client_for(dockerd)
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    stop_leftover_engines()
    for leftover in WORK_ROOT.glob("fresh-*"):  # never reused: the folders of interrupted fresh runs
        remove_tree(leftover)
    folder = _prepare_fresh_folder() if fresh else WORK_ROOT
    host = f"unix://{folder / 'docker.sock'}"
    env = {**os.environ, "DOCKER_HOST": host}
    log_path = folder / "dockerd.log"
    daemon_env = {
        **os.environ,
        "HTTPS_PROXY": NO_REGISTRY_PROXY,
        "HTTP_PROXY": NO_REGISTRY_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    command = [
        dockerd,
        "-H",
        host,
        "--data-root",
        str(folder / "data"),
        "--exec-root",
        str(folder / "exec"),
        "--pidfile",
        str(folder / "exec" / "dockerd.pid"),
    ]
    kind = "an empty data root" if fresh else f"{folder / 'data'}, kept between runs"
    with step(f"starting dockerd on {kind} (about 1 s)"), log_path.open("ab") as log:
        proc = subprocess.Popen(command, env=daemon_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        engine = DockerEngine(client, host, proc.pid, proc, log_path, env, folder=folder, scratch=fresh)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {proc.returncode}; see {log_path}")
            if _engine_answers(client, env):
                return engine
            time.sleep(0.5)
    engine.stop()
    raise RuntimeError(f"dockerd did not answer within 60 s; see {log_path}")


# --- make clean-test-state -------------------------------------------------------------------


def clean_test_state(say: Callable[[str], None] = print) -> int:
    """Stop our engines, delete WORK_ROOT and docker0, and purge the packages the tests
    apt-installed. Safe to repeat. Returns an exit status."""
    if not (WORK_ROOT.exists() or bridge_exists() or engine_pids_under(WORK_ROOT)):
        say(f"no test engine state: no dockerd of ours, no {WORK_ROOT}, no {BRIDGE}")
        return 0
    for pid in stop_leftover_engines():
        say(f"stopped the tests' engine process {pid}")
    if WORK_ROOT.exists():
        for child in WORK_ROOT.iterdir():  # the marker goes last: it says what to purge
            if child.is_dir() and not child.is_symlink():
                remove_tree(child)
            elif child != APT_MARKER:
                child.unlink()
        say(f"deleted the engine folders under {WORK_ROOT}")
    if bridge_exists():
        others = other_dockerd_pids(WORK_ROOT)
        if others:
            say(f"kept {BRIDGE}: dockerd pid {', '.join(map(str, others))} is not ours and uses it")
        else:
            delete_bridge()
            say(f"deleted the {BRIDGE} bridge")
    ours = sorted(_recorded_packages() & _installed_packages())
    if ours:
        # dpkg, not apt: it removes exactly these, and refuses rather than remove a package that
        # was installed since and depends on one of them.
        done = subprocess.run(["dpkg", "--purge", *ours], capture_output=True, text=True)
        if done.returncode != 0:
            say(f"dpkg --purge failed; kept {APT_MARKER} to retry:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            return 1
        say(f"purged the packages the tests installed: {' '.join(ours)}")
    if WORK_ROOT.exists():
        remove_tree(WORK_ROOT)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["clean"]:
        sys.exit("usage: python -m tests.support.docker_engine clean")
    sys.exit(clean_test_state())

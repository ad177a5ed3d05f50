"""`sam local` fixtures: a container engine, the local base image, `sam build`, local S3/SQS.

Everything started here is stopped here. Outside CI the engine's data folder persists (see
tests/support/docker_engine.py), so a second run reuses the base image and the image layers;
under CI=true every run starts from an empty engine, as on a fresh machine.

Steps that take minutes say so on the terminal (pytest captures everything else), with the time
they took.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.docker_engine import DockerEngine, Step, apt_install, start_engine
from tests.support.local_aws import LocalAws, bridge_gateway, start_local_aws
from tests.support.samcli import ROOT, ensure_sam_cli, sam_env

BASE_IMAGE = "skewless-lambda-base:bookworm-py311"
AWS_BASE_IMAGE_LINE = "BASE_IMAGE: public.ecr.aws/lambda/python:3.11"
FUNCTION = "InferenceFunction"
DATA_BUCKET = "skewless-data"  # the bucket named in events/s3_*.json
RESULTS_QUEUE = "skewless-results"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# Tests that build images themselves (not through a fixture): what they do, announced like a step.
SLOW_TESTS = {
    "test_litert_image_serves_golden_outputs_without_tensorflow_at_a_quarter_of_the_size": (
        "docker build of the LiteRT and TensorFlow images (about 2 min on a fresh engine)"
    ),
}


@dataclass
class SamProject:
    sam: Path
    engine: DockerEngine
    built_template: Path
    env_vars_file: Path
    aws: LocalAws
    results_queue_url: str
    build_seconds: float
    build_log: str

    def env(self) -> dict[str, str]:
        return sam_env(DOCKER_HOST=self.engine.host)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.sam), *args], capture_output=True, text=True, env=self.env(), cwd=ROOT, timeout=timeout
        )


def announcer(config: pytest.Config) -> Step:
    """A Step that writes one line to the terminal: what runs, then how long it took. The terminal
    reporter's stream is pytest's fd 1, captured while a fixture or test runs, so capture is
    suspended around each write (as `capsys.disabled()` does)."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")

    def show(text: str) -> None:
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            if reporter is None:  # -p no:terminal
                print(text, end="", file=sys.stderr, flush=True)
            else:
                reporter.write(text, flush=True)

    def mid_line() -> bool:
        """Whether pytest left text on the current line (a file name, progress dots)."""
        # The reporter's writer is private; when it is not there, a newline too many is harmless.
        return reporter is not None and bool(getattr(getattr(reporter, "_tw", None), "width_of_current_line", 1))

    @contextmanager
    def announce(what: str) -> Iterator[None]:
        show(("\n" if mid_line() else "") + f"skewless: {what} ... ")
        start = time.monotonic()
        outcome = "failed after"
        try:
            yield
            outcome = "done in"
        finally:
            show(f"{outcome} {time.monotonic() - start:.0f} s\n")

    return announce


@pytest.fixture(scope="session")
def step(request: pytest.FixtureRequest) -> Step:
    return announcer(request.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    what = SLOW_TESTS.get(getattr(item, "originalname", item.name))
    if what is None:
        return (yield)
    with announcer(item.config)(what):
        return (yield)


@pytest.fixture(scope="session")
def engine(step: Step) -> Iterator[DockerEngine]:
    running = start_engine(step)
    try:
        yield running
    finally:
        if not running.scratch:  # rebuilt images leave dangling layers; a fresh engine's go with its folder
            running.run("image", "prune", "--force", check=False)
        running.stop()


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine, step: Step) -> str:
    """Debian bookworm + Python 3.11, made with debootstrap (no registry); built once, then reused."""
    if not engine.has_image(BASE_IMAGE):
        if not shutil.which("debootstrap"):
            apt_install(["debootstrap"], step, "first run only, a few seconds")
        script = ROOT / "scripts" / "build-local-base-image.sh"
        with step("building the Debian base image with debootstrap (about 1 min)"):
            done = subprocess.run(
                [str(script), BASE_IMAGE, str(engine.folder / "base")],
                env={**engine.env, "DOCKER": engine.client},
                capture_output=True,
                text=True,
            )
        assert done.returncode == 0, f"building the base image failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return BASE_IMAGE


def _trust_host_ca_certificates() -> None:
    """The build's pip goes through this machine's TLS-re-signing proxy: give it the host's extra CAs."""
    target = ROOT / "build-inputs" / "ca-certificates"
    for cert in sorted(HOST_CA_DIR.glob("*.crt")):
        dst = target / cert.name
        if not dst.exists() or dst.read_bytes() != cert.read_bytes():
            shutil.copyfile(cert, dst)


def _test_template(work: Path, base: str) -> Path:
    """template.yaml on the local base image, with AWS_ENDPOINT_URL declared so --env-vars can set it."""
    text = (ROOT / "template.yaml").read_text()
    # Once per image function (the inference function and the pre-traffic gate share one image): all replaced,
    # so their build metadata stays equal and `sam build` still builds one image.
    assert text.count(AWS_BASE_IMAGE_LINE) >= 1, f"template.yaml should set {AWS_BASE_IMAGE_LINE!r}"
    text = text.replace(AWS_BASE_IMAGE_LINE, f"BASE_IMAGE: {base}")
    # Declared beside the function's MODEL_DIR, whatever value the template gives that (not the build argument,
    # `MODEL_DIR: !Ref ModelDir` in each image's DockerBuildArgs).
    found = [line for line in re.findall(r"^ +MODEL_DIR: .*\n", text, flags=re.MULTILINE) if "ModelDir" not in line]
    assert len(found) == 1, f"template.yaml should set the function's MODEL_DIR once, not {found}"
    model_dir_line = found[0]
    indent = model_dir_line[: len(model_dir_line) - len(model_dir_line.lstrip())]
    text = text.replace(model_dir_line, model_dir_line + f'{indent}AWS_ENDPOINT_URL: ""\n')
    path = work / "template.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def project(
    engine: DockerEngine, base_image: str, step: Step, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SamProject]:
    sam = ensure_sam_cli(step)
    work = tmp_path_factory.mktemp("sam")
    _trust_host_ca_certificates()
    template = _test_template(work, base_image)
    build_dir = work / "build"
    start = time.monotonic()
    with step("sam build of the function's image (about 2 min; seconds when its layers are cached)"):
        done = subprocess.run(
            [str(sam), "build", "-t", str(template), "--base-dir", str(ROOT), "--build-dir", str(build_dir)],
            capture_output=True,
            text=True,
            env=sam_env(DOCKER_HOST=engine.host),
            cwd=ROOT,
            timeout=1800,
        )
    build_seconds = time.monotonic() - start
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"sam build failed after {build_seconds:.0f} s:\n{log[-5000:]}"

    aws = start_local_aws(bridge_gateway(engine))
    try:
        aws.client("s3").create_bucket(Bucket=DATA_BUCKET)
        queue_url = aws.client("sqs").create_queue(QueueName=RESULTS_QUEUE)["QueueUrl"]
        env_vars = work / "env.json"
        env_vars.write_text(
            json.dumps(
                {
                    FUNCTION: {
                        "AWS_ENDPOINT_URL": aws.endpoint,
                        "OUTPUT_BUCKET": DATA_BUCKET,
                        "RESULTS_QUEUE_URL": queue_url,
                    }
                }
            )
        )
        yield SamProject(sam, engine, build_dir / "template.yaml", env_vars, aws, queue_url, build_seconds, log)
    finally:
        aws.stop()
        _remove_function_containers(engine)


def _remove_function_containers(engine: DockerEngine) -> None:
    """Containers `sam local` left behind (it normally removes its own)."""
    ids = engine.run("ps", "-aq", "--filter", "label=sam.cli.container.type=lambda", check=False).stdout.split()
    if ids:
        engine.run("rm", "-f", *ids, check=False)

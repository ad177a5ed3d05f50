"""The images as Lambda runs them: a read-only filesystem but /tmp, a user that is not root, and the CPU
share of a 1 GB function. Nothing the code does may need more (a cache written next to the code, a
config file in a home directory, a capture or baseline written outside /tmp).

Each image runs the Lambda runtime interface emulator (mounted from the aws-sam-cli wheel, as
`sam local` does) with those limits, and answers golden cases of two models through direct
invokes and HTTP API events.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.env.sam.conftest import _trust_host_ca_certificates
from tests.env.sam.test_litert_image import _build
from tests.support import zoo
from tests.support.api_events import http_api_event
from tests.support.docker_engine import DockerEngine
from tests.support.runtime_emulator import free_port
from tests.support.samcli import rie_binary

pytestmark = pytest.mark.sam

# What Lambda gives a 1,024 MB function: read-only but /tmp, an unprivileged user, ~0.58 vCPU.
LIMITS = ("--read-only", "--tmpfs", "/tmp:rw,size=512m", "--user", "993:990", "--memory", "1024m", "--cpus", "0.58")
INVOKE = "/2015-03-31/functions/function/invocations"


def _invoke(port: int, event: Any, timeout: float = 120) -> Any:
    """The emulator's answer (a cold TensorFlow load at 0.58 vCPU takes seconds); no answer is an
    AssertionError saying what came back instead."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{INVOKE}", data=json.dumps(event).encode())
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raise AssertionError(f"the emulator answered HTTP {err.code}: {err.read()[:2000]!r}") from None
    except (urllib.error.URLError, TimeoutError) as err:
        raise AssertionError(f"no answer after {time.monotonic() - start:.0f} s: {err}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise AssertionError(f"the emulator's answer is not JSON: {raw[:2000]!r}") from None


@pytest.fixture(scope="module", params=["litert", "tensorflow"])
def image(request: pytest.FixtureRequest, engine: DockerEngine, base_image: str) -> str:
    _trust_host_ca_certificates()
    return _build(engine, base_image, str(request.param))  # cached layers when test_litert_image built it


@pytest.fixture
def limited(engine: DockerEngine, image: str) -> Iterator[Any]:
    """Start the image under Lambda's limits for a model; stop it (and show its log on failure) at the end."""
    started: list[str] = []

    def start(model: str) -> int:
        port = free_port()
        container = engine.run(
            "run", "-d", *LIMITS, "-p", f"127.0.0.1:{port}:8080",
            "-v", f"{rie_binary()}:/usr/local/bin/aws-lambda-rie:ro",
            "-e", f"MODEL_DIR=/var/task/model_artifacts/{model}", "-e", "POWERTOOLS_TRACE_DISABLED=true",
            image,
        ).stdout.strip()  # fmt: skip
        started.append(container)
        deadline = time.monotonic() + 60
        while True:  # the emulator listens first; the function starts on the first invoke
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            except urllib.error.HTTPError:
                return port
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    logs = engine.run("logs", container, check=False)
                    raise AssertionError(f"the emulator did not start:\n{logs.stdout}{logs.stderr}") from None
                time.sleep(0.3)

    yield start
    for container in started:
        engine.run("rm", "-f", container, check=False)


@pytest.mark.parametrize("model", ["churn", "recommender"])
def test_golden_answers_under_lambdas_limits(limited: Any, engine: DockerEngine, image: str, model: str) -> None:
    port = limited(model)
    cases = zoo.cases(model)
    for case in cases:
        zoo.check_v1(model, case, _invoke(port, case["request"]), f"{image}, direct, under Lambda's limits")
    for case in cases[:3]:
        result = _invoke(port, http_api_event(case["request"], path=f"/v1/models/{model}:predict"))
        assert isinstance(result, dict) and result.get("statusCode") == 200, result
        zoo.check_v1(model, case, json.loads(result["body"]), f"{image}, HTTP API, under Lambda's limits")

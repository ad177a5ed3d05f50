"""Fuzz the running local API (`python -m handler serve`, what `make run` runs) with schemathesis, from our own
OpenAPI document: zero 5xx answers, every answer conforms to the document. The request count is recorded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import ROOT

COUNTS = ROOT / ".work" / "hostile_counts.json"
EXAMPLES_PER_MODE = 50  # per operation, positive and negative data each
MIN_REQUESTS = 400
TIME_BOUND_S = 90.0
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m handler serve` on a free port of 127.0.0.1; its output goes to a file (a pipe would fill)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"},
        )
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log_path.read_text():
            assert proc.poll() is None, f"the server exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the server did not start: {log_path.read_text()[-2000:]}"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _record(data: dict[str, object], path: Path = COUNTS) -> None:
    old = json.loads(path.read_text()) if path.exists() else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**old, **data}, indent=1, sort_keys=True) + "\n")


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)


def _fuzz(operation: APIOperation, mode: GenerationMode, base_url: str, tally: Tally, **fixed: Any) -> None:
    """Send up to EXAMPLES_PER_MODE generated requests to one operation; tally statuses and failed checks."""
    label = f"{operation.label} ({mode.value}{', name=' + fixed['name'] if fixed else ''})"
    strategy = operation.as_strategy(mode, path_parameters=fixed or None)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Case) -> None:
        if time.monotonic() - tally.start > TIME_BOUND_S:
            return
        response = case.call(base_url=base_url, timeout=30)
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors; keep going, report them all
            tally.failures.append(f"{label} -> {response.status_code}: {str(exc)[:800]}")

    try:
        fuzz()
    except Unsatisfiable:
        # A GET without parameters (or with its only one fixed) has no invalid variant: nothing negative to send.
        assert mode is GenerationMode.NEGATIVE, label


def test_fuzzed_local_api_answers_no_5xx_and_conforms_to_its_openapi(local_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{local_api}/openapi.json")
    tally = Tally()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our OpenAPI document has an operation schemathesis cannot read: {result}"
        operation = result.ok()
        named = "{name}" in operation.path
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, local_api, tally)
            if named:
                # Random names are all 404s; with the served model's name the body is what gets fuzzed.
                _fuzz(operation, mode, local_api, tally, name="churn")

    requests = sum(tally.statuses.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    elapsed = time.monotonic() - tally.start
    print(f"schemathesis: {requests} requests in {elapsed:.1f} s, statuses {sorted(tally.statuses.items())}")
    _record({"fuzzed_requests": requests, "fuzzed_5xx": server_errors, "fuzzed_statuses": dict(tally.statuses)})
    assert server_errors == 0, f"{server_errors} answers were 5xx: {tally.failures[:5]}"
    assert not tally.failures, f"{len(tally.failures)} answers broke a check:\n" + "\n".join(tally.failures[:10])
    assert requests >= MIN_REQUESTS, f"only {requests} requests were fuzzed (time bound {TIME_BOUND_S} s)"

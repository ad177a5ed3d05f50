"""Fuzz the running local API (`python -m handler serve`, what `make run` runs) with schemathesis, from our own
OpenAPI document, serving churn and a zoo model (recommender): no 5xx, every answer conforms to the document, and
every status is the one of its request's class (tests/hostile/status_oracle.py).

Every operation gets at least MIN_PER_ROUTE requests (issue 15: a global time bound let late routes get none);
the time budget is per operation and only cuts what is sent beyond that minimum. The counts are recorded.
"""

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
from tests.hostile.status_oracle import expected_statuses
from tests.support import zoo

COUNTS = ROOT / ".work" / "hostile_counts.json"
EXAMPLES_PER_MODE = 20  # per operation, name variant and mode (positive, negative): an upper bound
MIN_PER_ROUTE = 12  # requests every operation with parameters or a body must get, whatever the time
OPERATION_BUDGET_S = 2.0  # per operation: past it, only what the minimum still needs is sent
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
SERVED = ("churn", "recommender")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=SERVED)
def local_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, served model): `python -m handler serve` on a free port; its output goes to a file."""
    model = request.param
    port = _free_port()
    log_path = tmp_path_factory.mktemp(f"serve-{model}") / "serve.log"
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", "MODEL_DIR": str(zoo.model_dir(model))}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log_path.read_text():
            assert proc.poll() is None, f"the server exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the server did not start: {log_path.read_text()[-2000:]}"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", model
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _record(data: dict[str, object], path: Path = COUNTS) -> None:
    new = {**(json.loads(path.read_text()) if path.exists() else {}), **data}
    # The README's total: every server's requests of the latest run.
    new["fuzzed_requests"] = sum(int(new.get(f"fuzzed_requests_{m}", 0)) for m in SERVED)
    new["fuzzed_5xx"] = sum(int(new.get(f"fuzzed_5xx_{m}", 0)) for m in SERVED)
    new.pop("fuzzed_statuses", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    per_route: Counter[str] = field(default_factory=Counter)
    minimum: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _minimum(operation: APIOperation, fixed: dict[str, Any]) -> int:
    """MIN_PER_ROUTE if something is left to generate (a free path parameter, a query, a body), else 1."""
    free = {p.name for p in operation.path_parameters} - set(fixed)
    return MIN_PER_ROUTE if free or len(operation.body) or len(operation.query) else 1


def _fuzz(
    operation: APIOperation, mode: GenerationMode, base_url: str, served: str, tally: Tally, **fixed: Any
) -> None:
    """Send up to EXAMPLES_PER_MODE generated requests to one operation; tally statuses and failed checks."""
    label = operation.label
    what = f"{label} ({mode.value}{', name=' + fixed['name'] if fixed else ''})"
    strategy = operation.as_strategy(mode, path_parameters=fixed or None)
    minimum = max(_minimum(operation, fixed), tally.minimum.get(label, 0))
    tally.minimum[label] = minimum
    start = time.monotonic()

    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Case) -> None:
        if time.monotonic() - start > OPERATION_BUDGET_S and tally.per_route[label] >= minimum:
            return
        response = case.call(base_url=base_url, timeout=30)
        tally.statuses[response.status_code] += 1
        tally.per_route[label] += 1
        sent = response.request
        body = sent.body if isinstance(sent.body, (bytes, str)) else None
        allowed = expected_statuses(str(sent.method), str(sent.url), body, served)
        if response.status_code not in allowed:
            tally.failures.append(
                f"{what}: {sent.method} {sent.url} {str(sent.body)[:200]!r} -> {response.status_code}, "
                f"its class says {sorted(allowed)}: {response.text[:300]}"
            )
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors; keep going, report them all
            tally.failures.append(f"{what} -> {response.status_code}: {str(exc)[:800]}")

    try:
        fuzz()
    except Unsatisfiable:
        # A GET without parameters (or with its only one fixed) has no invalid variant: nothing negative to send.
        assert mode is GenerationMode.NEGATIVE, what


def test_fuzzed_local_api_answers_each_request_with_the_status_of_its_class(local_api: tuple[str, str]) -> None:
    base_url, served = local_api
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tally = Tally()
    start = time.monotonic()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our OpenAPI document has an operation schemathesis cannot read: {result}"
        operations.append(result.ok())
    for operation in operations:
        named = "{name}" in operation.path
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if not named or served == "churn":
                # Random names are 404s: asked of one server; the served name gets the body fuzzed on both.
                _fuzz(operation, mode, base_url, served, tally)
            if named:
                _fuzz(operation, mode, base_url, served, tally, name=served)

    requests = sum(tally.statuses.values())
    elapsed = time.monotonic() - start
    statuses = sorted(tally.statuses.items())
    print(f"schemathesis on {served}: {requests} requests in {elapsed:.1f} s, statuses {statuses}")
    short = {
        op.label: tally.per_route[op.label] for op in operations if tally.per_route[op.label] < tally.minimum[op.label]
    }
    _record(
        {
            f"fuzzed_requests_{served}": requests,
            f"fuzzed_statuses_{served}": dict(tally.statuses),
            f"fuzzed_5xx_{served}": sum(n for status, n in tally.statuses.items() if status >= 500),
            f"fuzzed_fewest_per_route_with_inputs_{served}": min(
                tally.per_route[op.label] for op in operations if tally.minimum[op.label] > 1
            ),
            f"fuzzed_operations_{served}": len(operations),
        }
    )
    assert not short, f"operations that got fewer requests than their minimum: {short}"
    assert len(tally.per_route) == len(operations), "every operation of the document was fuzzed"
    assert not tally.failures, f"{len(tally.failures)} answers broke a check:\n" + "\n".join(tally.failures[:10])
    assert tally.statuses[200] and tally.statuses[404], f"both served and unknown names were reached: {tally.statuses}"

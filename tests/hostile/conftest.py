"""Fixtures for hostile input: the app (built once), requests through lambda_handler, captured logs, leak checks."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT, LambdaContext
from tests.http.http_events import body_of, http_event

PREDICT = "/v1/models/churn:predict"
INFER = "/v2/models/churn/infer"

# What an answer or a log line must never show: a stack trace or a file path of the server.
_LEAK = re.compile(
    r"Traceback|File \"|site-packages|\.py\b|/usr/(lib|local)|/opt/|/var/task|/tmp/|" + re.escape(str(ROOT))
)


def leaks(text: str) -> list[str]:
    """Stack-trace and file-path fragments found in `text`."""
    return [m.group(0) for m in _LEAK.finditer(text)]


@pytest.fixture(scope="session")
def app() -> ModuleType:
    import handler.app

    return handler.app


@pytest.fixture(scope="session")
def golden_row(golden: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = golden["cases"][0]["request"]["instances"][0]
    return dict(row)


def call(
    app: ModuleType,
    method: str,
    path: str,
    body: Any = None,
    *,
    trigger: str = "http",
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """One request through lambda_handler, as API Gateway would send it; `body` str is sent as is."""
    event = http_event(trigger, method, path, body, headers=headers, base64_body=base64_body)
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


def assert_answer(response: dict[str, Any]) -> Any:
    """A 2xx with predictions or outputs, or a 4xx in our error shape; never a 5xx. Returns the body."""
    status = response["statusCode"]
    assert status < 500, f"{status}: {response.get('body')}"
    body = body_of(response)
    if status < 300:
        assert isinstance(body, dict) and ("predictions" in body or "outputs" in body), body
    else:
        assert 400 <= status < 500 and isinstance(body, dict), (status, body)
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("code"), str), body
        assert not leaks(response["body"]), response["body"]
    return body


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the service logs (Powertools JSON, with exceptions formatted), while the test runs."""
    from handler.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    try:
        yield stream
    finally:
        target.removeHandler(handler)


def log_records(stream: io.StringIO) -> list[dict[str, Any]]:
    """The captured log lines, parsed."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

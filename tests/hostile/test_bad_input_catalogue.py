"""A catalogue of named bad inputs through lambda_handler (HTTP API v2 events): each gets its status and message,
in our error shape, and neither the answer nor the logs show a stack trace, a file path or the request's values."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT, LambdaContext
from tests.hostile.catalogue import CATALOGUE, ROW, BadInput
from tests.hostile.conftest import leaks
from tests.http.http_events import body_of, http_event

# The golden row's distinctive numbers: a bad request carrying them must not have them quoted back.
ROW_VALUES = tuple(repr(v) for v in ROW.values() if isinstance(v, float) and not v.is_integer())
COUNTS = ROOT / ".work" / "hostile_counts.json"


def _send(app: ModuleType, case: BadInput) -> dict[str, Any]:
    event = http_event("http", case.method, case.path, case.body(), headers=case.headers or None)
    if case.base64:
        event["isBase64Encoded"] = True
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


def test_the_catalogue_has_at_least_40_distinct_bad_inputs() -> None:
    names = [c.name for c in CATALOGUE]
    assert len(set(names)) == len(names) >= 40, f"{len(names)} inputs, {len(set(names))} distinct"


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_bad_input_gets_its_status_and_message_and_leaks_nothing(
    case: BadInput, app: ModuleType, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    response = _send(app, case)
    status = response["statusCode"]
    assert status == case.status, f"{case.name}: expected {case.status}, got {status}: {response['body'][:500]}"
    body = body_of(response)
    assert set(body) >= {"error", "code"}, body
    assert case.fragment in body["error"], f"{case.name}: {case.fragment!r} not in {body['error']!r}"
    if status == 405:
        assert any(k.lower() == "allow" for k in response["headers"]), response["headers"]

    logged = logs.getvalue() + capsys.readouterr().err
    for where, text in (("answer", response["body"]), ("logs", logged)):
        assert not leaks(text), f"{case.name}: the {where} shows {leaks(text)}: {text[:1000]}"
        quoted = [v for v in (*case.secrets, *ROW_VALUES) if v in text]
        assert not quoted, f"{case.name}: the {where} quotes the request's values {quoted}: {text[:1000]}"
    assert '"request rejected"' in logs.getvalue(), "every rejection is logged (status and code only)"


def test_catalogue_counts_are_recorded_for_the_readme() -> None:
    # The README quotes this file; the fuzz test adds its request count to it.
    data = json.loads(COUNTS.read_text()) if COUNTS.exists() else {}
    data.update({"bad_inputs": len(CATALOGUE), "bad_input_statuses": sorted({c.status for c in CATALOGUE})})
    _write(COUNTS, data)
    assert data["bad_inputs"] >= 40


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")

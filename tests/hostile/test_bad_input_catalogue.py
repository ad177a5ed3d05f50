"""A catalogue of named bad inputs for every reference model, through each model's Lambda handler (HTTP API v2
events): each gets its exact status, code and message, for a 422 exactly the instances and inputs it names, in
our error shape; neither the answer nor the logs show a stack trace, a file path or the request's values."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, LambdaContext
from tests.hostile.bad_input import CODES, BadInput
from tests.hostile.catalogue import CATALOGUE
from tests.hostile.conftest import check_error, leaks, log_records, quoted, request_values
from tests.support import zoo
from tests.support.functions import Functions
from tests.support.http_events import body_of, header, http_event

COUNTS = ROOT / ".work" / "hostile_counts.json"


def _send(functions: Functions, case: BadInput, text: str | None) -> dict[str, Any]:
    event = http_event("http", case.method, case.route, text, headers=case.headers or None)
    if case.base64:
        event["isBase64Encoded"] = True
    response: dict[str, Any] = functions.handler(case.model)(event, LambdaContext())
    return response


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_bad_input_gets_its_status_and_message_and_leaks_nothing(
    case: BadInput, functions: Functions, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    text = case.body()
    response = _send(functions, case, text)
    body = check_error(response, case.status, case.model, text, case.secrets)
    assert case.fragment in body["error"], f"{case.name}: {case.fragment!r} not in {body['error']!r}"
    if case.details is not None:
        got = {(d["instance"], d["feature"]) for d in body["details"]}
        assert got == set(case.details), f"{case.name}: details {body['details']!r:.800}"
    if case.max_bytes is not None:
        assert len(response["body"].encode()) < case.max_bytes, f"{case.name}: {len(response['body'])} bytes"
    if case.status == 405:
        assert header(response, "Allow"), response["headers"]

    logged = logs.getvalue() + capsys.readouterr().err
    assert not leaks(logged), f"{case.name}: the logs show {leaks(logged)}: {logged[:1000]}"
    echoed = quoted((*case.secrets, *request_values(text, case.model)), logged)
    assert not echoed, f"{case.name}: the logs quote the request's values {echoed!r:.300}"
    rejected = [r for r in log_records(logs) if r.get("message") == "request rejected"]
    assert [(r["status"], r["code"]) for r in rejected] == [(case.status, case.code)], rejected


# What the catalogue must hold, written from issue 10 and the brief, apart from the catalogue itself:
# removing (or renaming) any of these entries fails this test, whatever the others do.
REQUIRED = {
    "recommender_item_id_200": 422,
    "recommender_item_id_minus_1": 422,
    "recommender_item_id_1_9": 422,
    "recommender_v2_item_id_200": 422,
    "digits_pixel_256": 422,
    "digits_pixel_minus_1": 422,
    "digits_pixel_1_5": 422,
    "digits_row_of_27_columns": 422,
    "digits_28x28_without_channel": 422,
    "digits_v2_shape_without_channel": 422,
    "digits_v2_bytes_datatype": 422,
    "sensor_20x2_sequence": 422,
    "sensor_string_in_readings": 422,
    "sensor_v2_shape_20x2": 422,
    "reviews_words_of_length_7": 422,
    "reviews_number_in_words": 422,
    "reviews_v2_words_as_fp32": 422,
    "empty_body": 400,
    "json_null": 400,
    "truncated_json": 400,
    "content_type_text_plain": 400,
    "unknown_model_name": 404,
    "get_on_predict": 405,
    "body_over_max_body_bytes": 413,
}


def test_the_catalogue_covers_every_model_every_input_and_every_status_class() -> None:
    by_name = {c.name: c for c in CATALOGUE}
    assert len(by_name) == len(CATALOGUE), "two entries share a name"
    missing = {n: s for n, s in REQUIRED.items() if n not in by_name or by_name[n].status != s}
    assert not missing, f"required entries missing or with another status: {missing}"
    assert {c.status for c in CATALOGUE} == set(CODES), "every status class of bad input has an entry"
    for model in zoo.MODELS:
        mine = [c for c in CATALOGUE if c.model == model and c.status == 422]
        named = {f for c in mine for _, f in c.details or ()}
        # Every input of every model is named by some 422, on v1 and on v2.
        for feature in zoo.feature_names(model):
            assert feature in named, f"no 422 entry names {model}'s input '{feature}'"
        assert any(c.route.startswith("/v2/") for c in mine), f"{model} has no OIP v2 entry"
        assert any(c.route.startswith("/v1/") for c in mine), f"{model} has no v1 entry"
    # An entry that pins no details would pass with any instance named: zoo entries all pin theirs.
    loose = [c.name for c in CATALOGUE if c.model != "churn" and c.status == 422 and c.details is None]
    assert not loose, loose
    _record(
        {
            "bad_inputs": len(CATALOGUE),
            "bad_input_statuses": sorted({c.status for c in CATALOGUE}),
            "bad_inputs_by_model": {m: sum(c.model == m for c in CATALOGUE) for m in zoo.MODELS},
        }
    )


def _record(data: dict[str, Any], path: Path = COUNTS) -> None:
    # The README quotes this file; the fuzz test adds its request counts to it.
    old = json.loads(path.read_text()) if path.exists() else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**old, **data}, indent=1, sort_keys=True) + "\n")


def test_a_golden_example_of_each_catalogue_model_is_answered() -> None:
    """The zoo entries alter a golden example: unaltered, that example is valid (so the 422s are the alteration's)."""
    from tests.hostile.zoo_bodies import example
    from tests.support.functions import FUNCTIONS

    for model in zoo.ZOO:
        response = FUNCTIONS.http(model, "POST", f"/v1/models/{model}:predict", {"instances": [example(model)] * 2})
        assert response["statusCode"] == 200, (model, response["body"][:300])
        assert len(body_of(response)["predictions"]) == 2

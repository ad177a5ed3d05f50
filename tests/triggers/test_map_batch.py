"""Distributed Map batches through `lambda_handler`: one answer per item, in order, training's answers.

Items are golden rows as each ItemReader gives them: objects keyed by input (JSON Lines, Parquet),
and for CSV every value as a string. Expected values are the committed golden.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.app import Function
from handler.triggers import direct
from tests.conftest import ROOT, LambdaContext
from tests.support import zoo
from tests.support.batches import as_csv_items, batch_event, item_cases

TARGETS = [(m, "litert") for m in zoo.MODELS] + [("churn", "tensorflow"), ("recommender", "tensorflow")]


def _answer(function: Function, event: dict[str, Any]) -> Any:
    return function.handler()(event, LambdaContext())


@pytest.mark.parametrize(("model", "runtime"), TARGETS, ids=[f"{m}-{r}" for m, r in TARGETS])
def test_every_golden_row_as_a_batch_item_gets_trainings_answer(
    model: str, runtime: str, function_for: Callable[[str, str], Function]
) -> None:
    function = function_for(model, runtime)
    cases = item_cases(model)
    assert cases, f"{model} has no golden case of named rows"
    for case, rows in cases:
        result = _answer(function, batch_event(rows))
        assert set(result) == {"predictions", "errors", "model_version"}, result
        assert result["errors"] == [] and result["model_version"] == zoo.manifest(model)["model"]["version"], result
        zoo.check_v1(model, case, {"predictions": result["predictions"]}, f"a Map batch ({runtime})")


@pytest.mark.parametrize("runtime", ["litert", "tensorflow"])
def test_csv_items_carry_every_value_as_a_string_and_get_trainings_answer(
    runtime: str, function_for: Callable[[str, str], Function]
) -> None:
    function = function_for("churn", runtime)
    checked = 0
    for case, rows in item_cases("churn"):
        items = as_csv_items(rows)
        if items is None:
            continue
        result = _answer(function, batch_event(items))
        assert result["errors"] == [], result["errors"]
        zoo.check_v1("churn", case, {"predictions": result["predictions"]}, "a Map batch of CSV items")
        checked += 1
    assert checked >= 20, f"only {checked} golden cases had CSV-able rows"


def test_a_bad_item_is_null_with_its_reasons_and_never_fails_the_batch(
    function_for: Callable[[str, str], Function],
) -> None:
    function = function_for("churn", "litert")
    case = next(c for c in zoo.cases("churn") if c["name"] == "batch_of_32_shuffled_keys")
    rows = zoo.named_rows(case)
    assert rows is not None
    items: list[Any] = as_csv_items(rows) or []
    items[3] = {**items[3], "age": "forty"}
    items[7] = {k: v for k, v in items[7].items() if k != "tenure_months"}
    items[9] = "not an object"
    items[11] = {**items[11], "contract_type": "weekly", "colour": "red"}
    result = _answer(function, batch_event(items))
    # Written by hand: the reasons values.py and coerce.py give, naming the input and never the value.
    assert result["errors"] == [
        {"item": 3, "reasons": [{"input": "age", "reason": "must be a number, got a string that is not one"}]},
        {"item": 7, "reasons": [{"input": "tenure_months", "reason": "is missing"}]},
        {
            "item": 9,
            "reasons": [
                {
                    "input": None,
                    "reason": "must be an object with one entry per input ("
                    + ", ".join(zoo.feature_names("churn"))
                    + ") or an array of values in that order, got a string",
                }
            ],
        },
        {
            "item": 11,
            "reasons": [
                {"input": "colour", "reason": "is not an input of this model"},
                {
                    "input": "contract_type",
                    "reason": "is not a known category; expected one of month_to_month, one_year, two_year",
                },
            ],
        },
    ]
    bad = {3, 7, 9, 11}
    assert [i for i, p in enumerate(result["predictions"]) if p is None] == sorted(bad)
    expected = case["expected"]["output_0"]
    for i, prediction in enumerate(result["predictions"]):
        if i not in bad:
            assert prediction == pytest.approx(expected[i], abs=1e-5), f"item {i}"


def test_a_row_the_model_cannot_take_after_preprocessing_is_an_item_error_not_a_null_answer(
    function_for: Callable[[str, str], Function],
) -> None:
    function = function_for("churn", "litert")
    rows = zoo.named_rows(zoo.cases("churn")[0])
    assert rows is not None
    result = _answer(function, batch_event([rows[0], {**rows[0], "total_charges": 3e38}]))
    assert result["predictions"][1] is None and result["predictions"][0] is not None
    [error] = result["errors"]
    assert error["item"] == 1 and error["reasons"][0]["input"] == "total_charges"
    assert error["reasons"][0]["reason"].startswith("is more than 1e+04 training standard deviations")


def test_an_empty_batch_is_answered_with_no_predictions(function_for: Callable[[str, str], Function]) -> None:
    result = _answer(function_for("churn", "litert"), {"Items": []})
    assert result == {"predictions": [], "errors": [], "model_version": zoo.manifest("churn")["model"]["version"]}


def test_a_batch_over_max_batch_size_fails_as_invalid_input_which_the_map_does_not_retry(
    function_for: Callable[[str, str], Function],
) -> None:
    rows = zoo.named_rows(zoo.cases("churn")[0])
    assert rows is not None
    with pytest.raises(direct.InvalidInput) as info:
        _answer(function_for("churn", "litert"), batch_event(rows * 1025))
    body = json.loads(str(info.value))
    assert body["status"] == 400 and "lower the ItemBatcher's MaxItemsPerBatch" in body["error"], body


def test_a_model_that_cannot_serve_fails_the_batch_as_model_unavailable_for_the_maps_retry(
    artifacts_copy: Any,
) -> None:
    from handler.settings import Settings

    pre = artifacts_copy / "preprocessing.json"
    pre.write_text(pre.read_text().replace('"mean"', '"mean" ', 1))
    broken = Function(Settings(model_dir=artifacts_copy))
    rows = zoo.named_rows(zoo.cases("churn")[0])
    assert rows is not None
    with pytest.raises(direct.ModelUnavailable) as info:
        broken.handler()(batch_event(rows), LambdaContext())
    body = json.loads(str(info.value))
    # The code and the request id; the file is named in the log only, under that request id.
    assert (body["status"], body["code"]) == (503, "artifacts_invalid") and body["request_id"], body
    assert "preprocessing.json" not in json.dumps(body) and str(artifacts_copy) not in json.dumps(body), body


def test_the_sample_batch_event_gets_trainings_answers(function_for: Callable[[str, str], Function]) -> None:
    """events/map_batch.json (`sam local invoke` sends it in tests/env/sam): golden rows as a CSV ItemReader gives."""
    event = json.loads((ROOT / "events" / "map_batch.json").read_text())
    case = next(c for c in zoo.cases("churn") if c["name"] == "batch_of_32_shuffled_keys")
    assert event["Items"] == as_csv_items(zoo.named_rows(case) or [])
    result = _answer(function_for("churn", "litert"), event)
    assert result["errors"] == []
    zoo.check_v1("churn", case, {"predictions": result["predictions"]}, "events/map_batch.json")

"""Real Distributed Map batch events through the Lambda runtime interface emulator (awslambdaric, our handler).

What Step Functions sends each child invocation after its ItemBatcher: `{"BatchInput", "Items"}`.
The answers are checked against the committed golden outputs; a failure is reported as Lambda
reports it, with the error type the state machine's Retry matches on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import zoo
from tests.support.batches import as_csv_items, batch_event, item_cases
from tests.support.runtime_emulator import RuntimeEmulator
from tests.support.samcli import rie_binary

MODELS = ["churn", "recommender", "digits", "reviews", "sensor"]


@pytest.fixture(scope="module")
def rie() -> Path:
    return rie_binary()


@pytest.fixture(scope="module", params=MODELS)
def served(
    request: pytest.FixtureRequest, rie: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RuntimeEmulator]]:
    name = str(request.param)
    log = tmp_path_factory.mktemp(f"rie-batch-{name}") / "emulator.log"
    with RuntimeEmulator(rie, log, {"MODEL_DIR": str(zoo.model_dir(name))}) as running:
        yield name, running


def test_every_golden_row_in_batches_through_the_emulator(served: tuple[str, RuntimeEmulator]) -> None:
    name, emulator = served
    for case, rows in item_cases(name):
        answer = emulator.invoke(batch_event(rows))
        assert answer.status == 200 and "errorType" not in answer.body, f"{answer.body}\n{emulator.log()}"
        assert answer.body["errors"] == [], answer.body["errors"]
        zoo.check_v1(name, case, {"predictions": answer.body["predictions"]}, "a Map batch through the emulator")


def test_csv_items_and_a_bad_item_through_the_emulator(rie: Path, tmp_path: Path) -> None:
    case = next(c for c in zoo.cases("churn") if c["name"] == "batch_of_100")
    items = as_csv_items(zoo.named_rows(case) or [])
    assert items is not None
    items[42] = {**items[42], "satisfaction_score": "very"}
    with RuntimeEmulator(rie, tmp_path / "emulator.log") as emulator:
        answer = emulator.invoke(batch_event(items))
    assert answer.status == 200, answer.body
    assert answer.body["errors"] == [
        {
            "item": 42,
            "reasons": [{"input": "satisfaction_score", "reason": "must be a number, got a string that is not one"}],
        }
    ]
    predictions = answer.body["predictions"]
    assert predictions[42] is None and len(predictions) == 100
    expected = case["expected"]["output_0"]
    good = [i for i in range(100) if i != 42]
    zoo.check_v1(
        "churn",
        {**case, "request": {"instances": [None] * 99}, "expected": {"output_0": [expected[i] for i in good]}},
        {"predictions": [predictions[i] for i in good]},
        "CSV items through the emulator",
    )


def test_a_batch_the_model_cannot_serve_fails_as_model_unavailable(
    rie: Path, artifacts_copy: Path, tmp_path: Path
) -> None:
    pre = artifacts_copy / "preprocessing.json"
    pre.write_text(pre.read_text().replace('"mean"', '"mean" ', 1))
    rows = zoo.named_rows(zoo.cases("churn")[0]) or []
    with RuntimeEmulator(rie, tmp_path / "emulator.log", {"MODEL_DIR": str(artifacts_copy)}) as emulator:
        answer = emulator.invoke(batch_event(rows))
    assert answer.status == 200, emulator.log()
    assert answer.body["errorType"] == "ModelUnavailable", answer.body
    assert json.loads(answer.body["errorMessage"])["status"] == 503

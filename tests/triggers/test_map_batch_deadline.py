"""A Map batch that would outlive its invocation: answered in pieces, each invocation going on from where the
last stopped, every item answered or rejected exactly once. The context's remaining time is the test's own
(under the 2 s margin), so each invocation answers one first piece (64 items) and hands back the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from handler.app import Function
from handler.triggers import direct
from handler.triggers.map_batch import FIRST_PIECE
from tests.conftest import LambdaContext
from tests.support.batches import as_csv_items, batch_event
from tests.support.moto_s3 import churn_rows
from tests.support.reference import churn_reference


@dataclass
class ShortOfTime(LambdaContext):
    """A function with 1 s left: under the 2 s margin, so it stops after each first piece."""

    def get_remaining_time_in_millis(self) -> int:
        return 1_000


BAD = {10: "lifetime", 70: "forever", 199: "weekly"}  # unknown contract types: item errors, one per piece


def _items() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    rows = churn_rows(200, seed=11)
    items = as_csv_items(rows)
    assert items is not None
    for i, word in BAD.items():
        items[i] = {**items[i], "contract_type": word}
    return rows, items


def test_a_batch_short_of_time_is_answered_in_pieces_each_item_once(
    function_for: Callable[[str, str], Function],
) -> None:
    handler = function_for("churn", "litert").handler()
    rows, items = _items()
    event: dict[str, Any] = batch_event(items)
    starts = []
    for _ in range(10):
        answer = handler(json.loads(json.dumps(event)), ShortOfTime())  # through JSON, as Step Functions passes it
        assert set(answer) <= {"predictions", "errors", "model_version", "unfinished"}, answer
        if "unfinished" not in answer:
            break
        done = answer["unfinished"]["from"]
        starts.append(done)
        # Everything before `from` is settled, nothing after it is; the items after it are handed back as they came.
        assert all((p is not None) or (i in BAD) for i, p in enumerate(answer["predictions"][:done]))
        assert all(p is None for p in answer["predictions"][done:])
        assert answer["unfinished"]["Items"] == items[done:]
        event = answer
    assert starts == [FIRST_PIECE, 2 * FIRST_PIECE, 3 * FIRST_PIECE], starts  # 200 items: 64, 64, 64, then 8

    assert [e["item"] for e in answer["errors"]] == sorted(BAD)
    assert all(e["reasons"][0]["input"] == "contract_type" for e in answer["errors"])
    good = [i for i in range(200) if i not in BAD]
    assert [i for i, p in enumerate(answer["predictions"]) if p is None] == sorted(BAD)
    got = np.asarray([answer["predictions"][i] for i in good])
    np.testing.assert_allclose(got, churn_reference([rows[i] for i in good]), atol=1e-5)


def test_a_batch_with_time_enough_is_answered_in_one_invocation(function_for: Callable[[str, str], Function]) -> None:
    _, items = _items()
    answer = function_for("churn", "litert").handler()(batch_event(items), LambdaContext())  # 30 s left
    assert "unfinished" not in answer and len(answer["predictions"]) == 200
    assert [e["item"] for e in answer["errors"]] == sorted(BAD)


def test_an_unfinished_answer_of_another_model_version_or_altered_is_refused(
    function_for: Callable[[str, str], Function],
) -> None:
    handler = function_for("churn", "litert").handler()
    _, items = _items()
    answer = handler(batch_event(items), ShortOfTime())
    other = {**answer, "model_version": "0"}
    with pytest.raises(direct.InvalidInput) as info:
        handler(other, ShortOfTime())
    body = json.loads(str(info.value))
    assert body["status"] == 400 and body["error"].startswith("the batch was begun by model version '0'"), body
    cut = {**answer, "unfinished": {**answer["unfinished"], "Items": items[100:]}}  # items lost in between
    with pytest.raises(direct.InvalidInput) as info:
        handler(cut, ShortOfTime())
    body = json.loads(str(info.value))
    assert body["error"].startswith("unfinished is not an answer of this function left unfinished"), body

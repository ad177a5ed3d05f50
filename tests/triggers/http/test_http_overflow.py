"""Issue 9, item 2: numbers that overflow are a 422 naming the instance and the feature, on every path.

`tenure_months: 1e39`, `total_charges: 3e38` or `1e300` once answered 200 with `null`. Each is sent as the
second instance of a batch whose first instance is a golden row, through every HTTP trigger on both v1
routes, by direct invoke (the invocation fails; its error carries the error body, "status": 422), and
through OIP v2 (one tensor per feature, and churn's rows tensor), on both runtimes. The expected answer is
written by hand from the issue: a 422 `invalid_input` whose only detail is (instance 1, that feature). Every
path is tried before the test judges, so a failure lists what each path answered.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support import zoo
from tests.support.functions import DIRECT_ERROR_TYPES, RUNTIMES, Functions, infer_path, predict_path
from tests.support.golden_requests import churn_rows_tensor
from tests.support.http_events import HTTP_TRIGGERS, body_of

OVERFLOWS = [("tenure_months", 1e39), ("total_charges", 3e38), ("total_charges", 1e300)]


def _batch(feature: str, value: float) -> list[dict[str, Any]]:
    good = zoo.named_rows(zoo.cases("churn")[0])[0]  # type: ignore[index]
    return [copy.deepcopy(good), {**copy.deepcopy(good), feature: value}]


def _v2_tensors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One tensor per feature, numbers as FP64 (the features' dtype), strings as BYTES."""
    tensors = []
    for f in zoo.manifest("churn")["signature"]["features"]:
        datatype = "BYTES" if f["dtype"] == "string" else "FP64"
        values = [r[f["name"]] if datatype == "BYTES" else float(r[f["name"]]) for r in rows]
        tensors.append({"name": f["name"], "shape": [len(rows)], "datatype": datatype, "data": values})
    return {"inputs": tensors}


def _outcome(status: int, body: Any) -> tuple[int, str | None, list[tuple[Any, Any]]]:
    if not isinstance(body, dict):
        return status, None, []
    found = [(d.get("instance"), d.get("feature")) for d in body.get("details") or []]
    return status, body.get("code") or ("answer: " + str(body)[:80]), found


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(("feature", "value"), OVERFLOWS, ids=[f"{f}={v:g}" for f, v in OVERFLOWS])
def test_an_overflowing_number_is_422_naming_the_instance_and_feature_on_every_path(
    feature: str, value: float, runtime: str, functions: Functions
) -> None:
    rows = _batch(feature, value)
    outcomes: dict[str, tuple[int, str | None, list[tuple[Any, Any]]]] = {}
    for trigger in HTTP_TRIGGERS:
        for path in (predict_path("churn"), "/predict"):
            r = functions.http("churn", "POST", path, {"instances": rows}, runtime=runtime, trigger=trigger)
            outcomes[f"{trigger} POST {path}"] = _outcome(r["statusCode"], body_of(r))
        # Columns too: the same examples as {"inputs": {feature: batch}}.
        columns = {"inputs": {k: [r[k] for r in rows] for k in rows[0]}}
        r = functions.http("churn", "POST", predict_path("churn"), columns, runtime=runtime, trigger=trigger)
        outcomes[f"{trigger} columns"] = _outcome(r["statusCode"], body_of(r))
        r = functions.http("churn", "POST", infer_path("churn"), _v2_tensors(rows), runtime=runtime, trigger=trigger)
        outcomes[f"{trigger} v2 tensors"] = _outcome(r["statusCode"], body_of(r))
    rows_case = {"name": "overflow", "request": {"instances": rows}, "batched": True}
    r = functions.http("churn", "POST", infer_path("churn"), churn_rows_tensor(rows_case), runtime=runtime)
    outcomes["http v2 rows tensor"] = _outcome(r["statusCode"], body_of(r))

    # Direct callers get no HTTP status: the failed invocation's error carries the error body with its status.
    try:
        answer = functions.direct("churn", {"instances": rows}, runtime=runtime)
        outcomes["direct invoke"] = _outcome(200, answer)
    except Exception as exc:
        body = json.loads(str(exc))
        outcomes["direct invoke"] = _outcome(body["status"], body)
        assert type(exc).__name__ == DIRECT_ERROR_TYPES[body["status"]], (type(exc), body)

    expected = (422, "invalid_input", [(1, feature)])
    wrong = {path: got for path, got in outcomes.items() if got != expected}
    assert not wrong, f"{feature}={value:g} on {runtime}: expected {expected} everywhere; " + "; ".join(
        f"{path} -> {got}" for path, got in wrong.items()
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_good_row_of_those_batches_is_answered_as_training_answered_it(runtime: str, functions: Functions) -> None:
    """The batches above differ from a golden request only in their second row: the first alone is golden."""
    case = zoo.cases("churn")[0]
    assert len(case["request"]["instances"]) == 1
    only_good = {"instances": _batch("total_charges", 1e300)[:1]}
    response = functions.http("churn", "POST", predict_path("churn"), only_good, runtime=runtime)
    zoo.check_v1("churn", case, body_of(response), f"good row alone ({runtime})")

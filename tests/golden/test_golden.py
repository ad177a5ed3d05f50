"""Every golden case of every reference model, through the serving core on both runtimes, answers as training did.

The reference is the committed golden.json (what the training process computed), read by
tests.support.zoo.check_v1, a checker of TF Serving's layout written apart from the server.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from handler.core.service import Service
from tests.golden.conftest import RUNTIMES
from tests.support import zoo

CASES = [(name, case["name"]) for name in zoo.MODELS for case in zoo.cases(name)]


def _case(name: str, case_name: str) -> dict[str, Any]:
    return next(c for c in zoo.cases(name) if c["name"] == case_name)


def _largest_row_case(name: str) -> dict[str, Any]:
    rows = [c for c in zoo.cases(name) if "instances" in c["request"]]
    return max(rows, key=lambda c: len(c["request"]["instances"]))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(("name", "case_name"), CASES, ids=[f"{m}/{c}" for m, c in CASES])
def test_every_golden_case_of_every_model_answers_as_training_did(
    zoo_service: Callable[[str, str], Service], name: str, case_name: str, runtime: str
) -> None:
    case = _case(name, case_name)
    answer = zoo_service(name, runtime).predict_v1(copy.deepcopy(case["request"]))
    zoo.check_v1(name, case, answer, f"Service.predict_v1 on {runtime}")


def test_the_churn_golden_file_covers_every_way_clients_send_data() -> None:
    names = {c["name"] for c in zoo.cases("churn")}
    assert len(names) >= 30
    for required in (
        "named_features_shuffled_keys_0",
        "ordered_list_rows_0",
        "single_example_columnar_named",
        "single_example_columnar_ordered",
        "ints_where_floats_expected_0",
        "numeric_strings",
        "unseen_payment_method",
        "batch_of_1",
        "batch_of_100",
    ):
        assert required in names
    sizes = {len(c["request"]["instances"]) for c in zoo.cases("churn") if "instances" in c["request"]}
    assert {1, 100} <= sizes


@pytest.mark.parametrize("name", zoo.ZOO)
def test_every_zoo_model_has_row_columnar_and_unbatched_golden_cases(name: str) -> None:
    cases = zoo.cases(name)
    assert any("instances" in c["request"] for c in cases)
    assert any("inputs" in c["request"] and c["batched"] for c in cases)
    assert any(not c["batched"] for c in cases), "a single example without the batch dimension"
    assert max(len(c["request"].get("instances", [])) for c in cases) >= 8


def test_churn_answers_the_same_to_shuffled_keys_float64_and_integral_ints(service: Service) -> None:
    case = _case("churn", "batch_of_100")
    rows = case["request"]["instances"]
    rnd = random.Random(3)

    def shuffled(r: dict[str, Any]) -> dict[str, Any]:
        keys = list(r)
        rnd.shuffle(keys)
        return {k: r[k] for k in keys}

    def as_float64(r: dict[str, Any]) -> dict[str, Any]:
        return {k: float(np.float64(v)) if isinstance(v, float) else v for k, v in r.items()}

    def integral_as_int(r: dict[str, Any]) -> dict[str, Any]:
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in r.items()}

    for variant in (shuffled, as_float64, integral_as_int):
        body = {"instances": [variant(r) for r in rows]}
        zoo.check_v1("churn", case, service.predict_v1(body), variant.__name__)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", zoo.MODELS)
def test_outputs_do_not_depend_on_the_batch_a_row_arrives_in(
    zoo_service: Callable[[str, str], Service], name: str, runtime: str
) -> None:
    case = _largest_row_case(name)
    service = zoo_service(name, runtime)
    for i, row in enumerate(case["request"]["instances"]):
        alone = {
            "name": f"{case['name']}[{i}] alone",
            "request": {"instances": [row]},
            "batched": True,
            "expected": {out: [batch[i]] for out, batch in case["expected"].items()},
        }
        zoo.check_v1(name, alone, service.predict_v1(copy.deepcopy(alone["request"])), f"one by one on {runtime}")


@pytest.mark.parametrize("name", zoo.MODELS)
def test_no_batch_size_retraces_the_tensorflow_function(zoo_service: Callable[[str, str], Service], name: str) -> None:
    service = zoo_service(name, "tensorflow")
    case = _largest_row_case(name)
    rows = case["request"]["instances"]
    for n in (1, 2, 3, 7, len(rows)):
        service.predict_v1(copy.deepcopy({"instances": rows[:n]}))
    forward = service.model.load()
    assert forward.tracing_count() == 1  # type: ignore[attr-defined]

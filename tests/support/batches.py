"""Functions for the bulk tests (one per model and runtime, built on first use) and Map batch events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.app import Function
from handler.settings import Settings
from tests.support import zoo

Handler = Callable[[Any, Any], Any]


@pytest.fixture(scope="session")
def function_for() -> Callable[[str, str], Function]:
    """`function_for(model, runtime)`: the deployed function of that model (the model loads lazily)."""
    built: dict[tuple[str, str], Function] = {}

    def get(model: str, runtime: str = "litert") -> Function:
        if (model, runtime) not in built:
            function = Function(Settings(model_dir=zoo.model_dir(model), serving_runtime=runtime))
            assert function.service is not None, f"{model} on {runtime} did not start: {function.startup_error}"
            built[(model, runtime)] = function
        return built[(model, runtime)]

    return get


def batch_event(items: list[Any], source: str = "s3://skewless-data/incoming/big.csv") -> dict[str, Any]:
    """What a Distributed Map's ItemBatcher hands the function (BatchInput as template.yaml sets it)."""
    return {
        "BatchInput": {"source": source},
        "Items": items,
    }


def as_csv_items(rows: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """Rows as a CSV ItemReader gives them: every value a string; None when a value has no plain CSV form."""
    out = []
    for row in rows:
        if not all(type(v) in (int, float, str) for v in row.values()):
            return None
        out.append({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    return out


def item_cases(model: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(golden case, its rows as objects keyed by input): what a JSON Lines or Parquet ItemReader gives."""
    return [(case, rows) for case in zoo.cases(model) if (rows := zoo.named_rows(case)) is not None]

"""Served windows with labels, for the quality tests: fresh draws from the training generators (seeds training never
used), answered by the reference model on LiteRT, as data capture records them, and their true labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from handler.app import Function
from handler.core.inference_ids import RowIds
from handler.settings import Settings
from tests.monitoring.conftest import ARTIFACTS
from training import churn_data, recommender

Columns = dict[str, np.ndarray]


@dataclass
class Window:
    """Rows as served (v1 instances), the model's answers by output, and the true labels."""

    instances: list[dict[str, Any]]
    outputs: dict[str, np.ndarray]
    labels: np.ndarray
    columns: Columns

    def capture_lines(self, request_id: str) -> list[str]:
        """The window as data capture writes it: one record a row, named `<request_id>/<row>`."""
        ids = RowIds(request_id)
        lines = []
        for i, instance in enumerate(self.instances):
            outputs = {name: np.asarray(out[i]).tolist() for name, out in self.outputs.items()}
            record = {"inference_id": ids.row(i), "instance": instance, "outputs": outputs}
            lines.append(json.dumps(record))
        return lines

    def label_lines(self, request_id: str, labels: np.ndarray | None = None) -> list[str]:
        values = self.labels if labels is None else labels
        return [json.dumps({"inference_id": f"{request_id}/{i}", "label": float(v)}) for i, v in enumerate(values)]


_FUNCTIONS: dict[str, Function] = {}


def served(model: str) -> Function:
    """The reference model on LiteRT, any batch size, no drift watch."""
    if model not in _FUNCTIONS:
        settings = Settings(model_dir=ARTIFACTS / model, serving_runtime="litert")
        _FUNCTIONS[model] = Function(replace(settings, max_batch_size=1 << 20, drift_window=0))
    return _FUNCTIONS[model]


def _answer(model: str, columns: Columns) -> dict[str, np.ndarray]:
    service = served(model).service
    assert service is not None
    instances = rows(model, columns)
    return dict(service.run(service.coercer.coerce({"instances": instances}).columns).outputs)


def rows(model: str, columns: Columns) -> list[dict[str, Any]]:
    n = len(next(iter(columns.values())))
    if model == "churn":
        return [churn_data.row(columns, i) for i in range(n)]
    return [{name: np.asarray(col[i]).tolist() for name, col in columns.items()} for i in range(n)]


def churn_window(n: int, seed: int) -> Window:
    columns, labels = churn_data.generate(n, seed)
    return Window(rows("churn", columns), _answer("churn", columns), labels.astype(np.float64), columns)


def relevance_window(n: int, seed: int) -> Window:
    columns, targets = recommender.generate(n, seed)
    labels = targets["relevance_score"].astype(np.float64)
    return Window(rows("recommender", columns), _answer("recommender", columns), labels, columns)


def flipped(window: Window, feature: str = "contract_type", value: str = "two_year") -> np.ndarray:
    """A concept shift: the labels of one category's rows turned over."""
    labels = window.labels.copy()
    rows_of = window.columns[feature] == value
    labels[rows_of] = 1.0 - labels[rows_of]
    return labels


Draw = Callable[[int, int], Window]

"""The evidence behind the quality thresholds: windows of labelled served rows against a baseline of held-out rows.

The baseline is fitted here as the export fits it: 4,000 held-out rows (a seed training never used) answered
by the served model, with their true labels. Each window is 1,000 fresh rows from the training generator
(other seeds), answered by the served model (LiteRT), written as data capture records them and labelled in
their own lines, then joined and evaluated as `python -m handler quality` does. The labels are the
generator's own (the truth the model was trained on), or one change made to them. The rates are written to
.work/quality_evidence.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from handler.core.artifacts import BASELINE_FILE
from handler.monitoring.baseline import Baseline
from handler.monitoring.quality import baseline as quality_baseline
from handler.monitoring.quality.evaluate import Evaluation, evaluate
from handler.monitoring.quality.join import Joined
from handler.monitoring.quality.labels import Labels
from handler.monitoring.quality.problem import Problem, resolve
from handler.monitoring.quality.slices import Slicer, by_slice
from tests.conftest import ROOT
from tests.monitoring.quality_data import Window, churn_window, flipped, relevance_window, served

WINDOW = 1000
WINDOWS = 200
VALIDATION = 4000
SHIFT = 0.5  # added to every relevance label: half the labels' standard deviation (about 1)
EVIDENCE: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def write_evidence() -> Iterator[None]:
    yield
    out = ROOT / ".work" / "quality_evidence.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(EVIDENCE, indent=1) + "\n")
    print("\n" + "\n".join(f"{case}: {row}" for case, row in EVIDENCE.items()))


class Judge:
    """One model's problem, slices and baseline, fitted on held-out rows, and windows evaluated against them."""

    def __init__(self, model: str, draw: Callable[[int, int], Window], output: str | None = None) -> None:
        service = served(model).service
        assert service is not None
        artifacts = service.artifacts
        self.draw = draw
        self.slicer = Slicer.from_baseline(Baseline.load(artifacts.model_dir / BASELINE_FILE))
        held_out = draw(VALIDATION, 5000)
        self.problem: Problem = resolve(
            artifacts.signature, artifacts.manifest.raw, held_out.labels.tolist(), None, output
        )
        answers = self.problem.answers(held_out.outputs[self.problem.output].tolist())
        slices = by_slice(
            self.slicer, self.slicer.assign(held_out.instances), self.problem.type, held_out.labels, answers
        )
        self.baseline = quality_baseline.fit(self.problem, held_out.labels, answers, slices)

    def windows(self, change: Callable[[Window], np.ndarray] | None = None) -> list[Evaluation]:
        found = []
        for seed in range(6000, 6000 + WINDOWS):
            window = self.draw(WINDOW, seed)
            labels = Labels()
            labels.read(window.label_lines(f"w{seed}", change(window) if change else None), "labels")
            joined = Joined()
            joined.read(window.capture_lines(f"w{seed}"), "capture", labels)
            found.append(evaluate(joined, labels, self.problem, self.baseline, self.slicer))
        return found


def _closest(found: list[Evaluation]) -> float:
    """The largest share of its threshold any metric of any window worsened by."""
    return max(
        (m["worse_by"] / m["threshold"])
        for e in found
        for m in (e.baseline or {}).values()
        if m["worse_by"] is not None
    )


@pytest.fixture(scope="module")
def churn() -> Judge:
    return Judge("churn", churn_window)


@pytest.fixture(scope="module")
def relevance() -> Judge:
    return Judge("recommender", relevance_window, output="relevance_score")


def test_the_problem_and_output_are_read_from_the_model_and_its_labels(churn: Judge, relevance: Judge) -> None:
    assert (churn.problem.type, churn.problem.output) == ("binary", "output_0")
    assert (relevance.problem.type, relevance.problem.output) == ("regression", "relevance_score")


def test_labels_that_agree_with_training_raise_at_most_one_false_alarm_in_a_hundred_windows(
    churn: Judge, relevance: Judge
) -> None:
    for name, judge in (("churn", churn), ("relevance", relevance)):
        found = judge.windows()
        assert all(e.rows_joined == WINDOW and e.unmatched_labels == 0 for e in found)
        alarms = [e.degraded for e in found if e.degraded]
        EVIDENCE[f"{name}_fresh"] = {"windows": WINDOWS, "alarms": len(alarms), "closest": round(_closest(found), 3)}
        assert len(alarms) <= WINDOWS // 100, f"{name}: {len(alarms)} false alarms in {WINDOWS} windows: {alarms}"


def test_labels_flipped_for_one_category_are_caught_and_that_slice_is_named_first(churn: Judge) -> None:
    found = churn.windows(flipped)
    caught = sum(bool(e.degraded) for e in found)
    first = [(e.worst_slices[0]["feature"], e.worst_slices[0]["slice"]) for e in found]
    named = sum(f == ("contract_type", "two_year") for f in first)
    EVIDENCE["churn_two_year_flipped"] = {"windows": WINDOWS, "caught": caught, "slice_named_first": named}
    assert caught >= 0.99 * WINDOWS, f"caught in {caught} of {WINDOWS} windows"
    assert named >= 0.99 * WINDOWS, f"two_year named first in {named} of {WINDOWS}: {set(first)}"
    worst = found[0].worst_slices[0]
    assert worst["rows"] == int(np.sum(churn.draw(WINDOW, 6000).columns["contract_type"] == "two_year"))


def test_a_regression_target_shifted_by_a_constant_is_caught(relevance: Judge) -> None:
    found = relevance.windows(lambda w: w.labels + SHIFT)
    caught = sum(bool(e.degraded) for e in found)
    by_metric = {name: sum(name in e.degraded for e in found) for name in relevance.baseline.metrics}
    EVIDENCE["relevance_shifted"] = {"windows": WINDOWS, "shift": SHIFT, "caught": caught, "by_metric": by_metric}
    assert caught >= 0.99 * WINDOWS, f"caught in {caught} of {WINDOWS} windows"

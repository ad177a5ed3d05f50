"""Labels in both forms, read as they are; a malformed line is reported with its line number, never an error."""

from __future__ import annotations

import base64
import json

import pytest

from handler.core.signature import Signature
from handler.monitoring.quality.labels import Labels
from handler.monitoring.quality.problem import Problem, ProblemError, resolve
from tests.monitoring import data


def sagemaker(event_id: str, value: str, encoding: str = "CSV") -> str:
    record = {"groundTruthData": {"data": value, "encoding": encoding}, "eventMetadata": {"eventId": event_id}}
    return json.dumps({**record, "eventVersion": "0"})


def test_both_forms_are_read_into_one_set_of_labels() -> None:
    labels = Labels()
    labels.read(
        [json.dumps({"inference_id": "a/0", "label": 1}), json.dumps({"inference_id": "a/1", "label": "0"})], "ours"
    )
    labels.read(
        [
            sagemaker("b/0", "1").encode(),
            sagemaker("b/1", base64.b64encode(b"0").decode(), "BASE64"),
            sagemaker("b/2", "true", "JSON"),
            sagemaker("b/3", '"cat, dog"'),  # one quoted CSV value
        ],
        "sagemaker",
    )
    got = {k: (v.value, v.where) for k, v in labels.by_id.items()}
    assert got == {
        "a/0": (1, "ours line 1"),
        "a/1": ("0", "ours line 2"),
        "b/0": ("1", "sagemaker line 1"),
        "b/1": ("0", "sagemaker line 2"),
        "b/2": (True, "sagemaker line 3"),
        "b/3": ("cat, dog", "sagemaker line 4"),
    }
    assert labels.malformed.count == 0


def test_malformed_lines_are_counted_and_named_by_line_the_rest_read() -> None:
    lines = [
        json.dumps({"inference_id": "x/0", "label": 1}),
        "{not json",
        "",  # blank lines are skipped, not counted
        json.dumps({"label": 1}),
        json.dumps({"inference_id": "x/1", "label": None}),
        sagemaker("x/2", "1,0"),
        json.dumps({"groundTruthData": {"data": "1"}}),
        json.dumps([1, 2]),
        sagemaker("x/3", "!!", "BASE64"),
        json.dumps({"inference_id": "x/0", "label": 0}),  # a correction
    ]
    labels = Labels()
    labels.read(lines, "labels.jsonl")
    assert {k: v.value for k, v in labels.by_id.items()} == {"x/0": 0}
    assert labels.replaced == 1 and labels.malformed.count == 7
    assert labels.malformed.examples == [
        "labels.jsonl line 2: not JSON",
        'labels.jsonl line 4: no "inference_id" string: a label line is {"inference_id": ..., "label": ...}',
        'labels.jsonl line 5: "label" must be a number, true/false or a string',
        "labels.jsonl line 6: groundTruthData.data holds 2 CSV values; a label is one",
        "labels.jsonl line 7: no eventMetadata.eventId string",
    ]


def _signature(model: str) -> Signature:
    return Signature.from_dict(data.signature(model))


def test_the_problem_comes_from_the_flag_then_the_outputs_then_the_labels() -> None:
    churn = _signature("churn")
    assert resolve(churn, {}, [0, 1, "1", True]).type == "binary"
    assert resolve(churn, {}, [0.5, 2.0]).type == "regression"
    assert resolve(churn, {}, [0, 1], chosen="regression").source == "--problem"
    digits = resolve(_signature("digits"), {}, ["3"])
    assert (digits.type, digits.width, digits.label("3"), digits.source) == (
        "multiclass",
        10,
        3.0,
        "output 'output_0' (10 scores a row)",
    )
    named = resolve(churn, {"class_names": ["stays", "leaves"]}, [])
    assert (named.type, named.label("leaves"), named.label(0)) == ("binary", 1.0, 0.0)
    recorded = resolve(churn, {"problem": {"type": "regression", "output": "output_0"}}, [0, 1])
    assert (recorded.type, recorded.source) == ("regression", "the manifest")


def test_a_model_with_two_outputs_needs_the_one_the_labels_judge() -> None:
    with pytest.raises(ProblemError, match="name the one the labels judge"):
        resolve(_signature("recommender"), {}, [0.3])
    got = resolve(_signature("recommender"), {}, [0.3], output="relevance_score")
    assert (got.type, got.output) == ("regression", "relevance_score")
    with pytest.raises(ProblemError, match="a multiclass model's gives a score a class"):
        resolve(_signature("churn"), {}, [1], chosen="multiclass")


@pytest.mark.parametrize(
    ("problem", "value", "why"),
    [
        (Problem("binary", "o", 1), 2, "label 2 is not 0/1 or true/false"),
        (Problem("multiclass", "o", 10), 10, "label 10 is not a class index 0..9 or a class name"),
        (Problem("multiclass", "o", 10), 1.5, "label 1.5 is not a class index"),
        (Problem("regression", "o", 1), "high", "label 'high' is not a number"),
    ],
)
def test_a_label_that_does_not_fit_the_problem_says_why(problem: Problem, value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        problem.label(value)

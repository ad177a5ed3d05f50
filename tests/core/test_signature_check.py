"""A signature edited with its digest redone (it passes the digest check) is refused against the model itself.

Each artifact is a copy of a reference model whose manifest is edited, its digest redone with the tests' own helper
(tests/support/artifacts.py), as a hand edit that also recomputes the digest would be. The names, dtypes and shapes
in the expected messages are the reference models' own, written out by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handler.app import Function
from handler.bootstrap import open_service
from handler.core.artifacts import Artifacts
from handler.errors import ArtifactError
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.artifacts import edit_manifest
from tests.support.http_events import body_of, http_event

Edit = Callable[[dict[str, Any]], Any]
ADVICE = "; re-export the model instead of editing the manifest"
# What a caller is told of an artifact that failed its checks (errors.ArtifactError.public): never the reason.
UNAVAILABLE = "the model is unavailable: its files failed verification at start"


def _copy(tmp_path: Path, model: str) -> Path:
    return Path(shutil.copytree(zoo.model_dir(model), tmp_path / model))


def _tensor(side: str, which: str, **change: Any) -> Edit:
    """Change one named tensor of one side of the signature."""

    def edit(manifest: dict[str, Any]) -> None:
        [tensor] = [t for t in manifest["signature"][side] if t["name"] == which]
        tensor.update(change)

    return edit


def _both(which: str, **change: Any) -> Edit:
    """Change a tensor that is a feature and an input alike (a model without numpy preprocessing): both agree."""

    def edit(manifest: dict[str, Any]) -> None:
        _tensor("features", which, **change)(manifest)
        _tensor("inputs", which, **change)(manifest)

    return edit


def _edited(tmp_path: Path, model: str, edit: Edit) -> Path:
    model_dir = _copy(tmp_path, model)
    edit_manifest(model_dir, edit)  # the digest redone: only the comparison with the model can tell
    return model_dir


# (model, edit, the difference named, where the runtimes name it differently: {runtime: difference}).
AT_LOAD = {
    "an_input_dtype": (
        "recommender",
        _both("item_id", dtype="int64"),
        "input 'item_id' is int64 scalar in the manifest but int32 scalar in the model",
    ),
    "an_input_shape": (
        "recommender",
        _both("user_features", shape=[5]),
        "input 'user_features' is float32 [5] in the manifest but float32 [6] in the model",
    ),
    "an_image_without_its_channel_axis": (
        "digits",
        _both("image", shape=[28, 28]),
        "input 'image' is uint8 [28, 28] in the manifest but uint8 [28, 28, 1] in the model",
    ),
    "a_fixed_length_made_free": (
        "sensor",
        _both("readings", shape=[None, 3]),
        "input 'readings' is float32 [any, 3] in the manifest but float32 [20, 3] in the model",
    ),
    "an_input_renamed": (
        "recommender",
        _both("item_id", name="item"),
        {  # the manifest's order; the Keras model's dict order; LiteRT's signature, by name
            "tensorflow": "the manifest's inputs are user_features, item but the model's are user_features, item_id",
            "litert": "the manifest's inputs are user_features, item but the model's are item_id, user_features",
        },
    ),
    "an_output_renamed": (
        "recommender",
        _tensor("outputs", "click_probability", name="click"),
        "the manifest's outputs are click, relevance_score but the model's are click_probability, relevance_score",
    ),
    "an_output_dtype": (
        "recommender",
        _tensor("outputs", "relevance_score", dtype="float64"),
        "output 'relevance_score' is float64 [1] in the manifest but float32 [1] in the model",
    ),
    "the_input_of_numpy_preprocessing": (
        "churn",
        _tensor("inputs", "features", dtype="float64"),
        "input 'features' is float64 [19] in the manifest but float32 [19] in the model",
    ),
}
MODEL_FILES = {"tensorflow": "model.keras", "litert": "model.tflite"}


def _load_refusal(model_dir: Path, runtime: str) -> ArtifactError:
    service = open_service(Settings(model_dir=model_dir, serving_runtime=runtime))  # the artifacts verify
    with pytest.raises(ArtifactError) as info:
        service.model.load()
    return info.value


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
@pytest.mark.parametrize("case", sorted(AT_LOAD))
def test_a_signature_the_model_does_not_take_is_refused_at_load_naming_the_difference(
    tmp_path: Path, case: str, runtime: str
) -> None:
    model, edit, difference = AT_LOAD[case]
    wanted = difference[runtime] if isinstance(difference, dict) else difference
    error = _load_refusal(_edited(tmp_path, model, edit), runtime)
    assert error.message == f"manifest.json's signature does not match {MODEL_FILES[runtime]}: {wanted}{ADVICE}"
    assert error.status == 503 and error.code == "artifacts_invalid"


def test_how_the_inputs_are_passed_is_checked_on_tensorflow_where_it_matters(tmp_path: Path) -> None:
    # TensorFlow calls the Keras model with its inputs in this structure; LiteRT takes every input by name.
    model_dir = _edited(tmp_path, "recommender", lambda m: m["signature"].update(input_structure="list"))
    error = _load_refusal(model_dir, "tensorflow")
    assert error.message == (
        "manifest.json's signature does not match model.keras: the manifest has the model's inputs as a list but "
        f"the model's are a dict{ADVICE}"
    )
    service = open_service(Settings(model_dir=model_dir, serving_runtime="litert"))
    case = zoo.cases("recommender")[0]
    zoo.check_v1("recommender", case, service.predict_v1(case["request"]), "litert, structure edited")


AT_OPEN = {
    "a_raw_feature_dtype": (
        "churn",
        _tensor("features", "tenure_months", dtype="int32"),  # a float truncated into an int, were it served
        "manifest.json's features do not match preprocessing.json: feature 'tenure_months' is int32 scalar, but "
        "float64 scalar in preprocessing.json",
    ),
    "a_strict_vocabulary_widened": (
        "churn",
        _tensor("features", "contract_type", vocabulary=["month_to_month", "one_year", "two_year", "weekly"]),
        "manifest.json's features do not match preprocessing.json: feature 'contract_type' has vocabulary "
        "['month_to_month', 'one_year', 'two_year', 'weekly'], but ['month_to_month', 'one_year', 'two_year'] in "
        "preprocessing.json",
    ),
    "a_feature_apart_from_its_input": (
        "digits",
        _tensor("features", "image", shape=[28, 28]),
        "manifest.json's features do not match its inputs: feature 'image' is uint8 [28, 28], but uint8 "
        "[28, 28, 1] in its inputs",
    ),
}


@pytest.mark.parametrize("case", sorted(AT_OPEN))
def test_features_that_differ_from_what_the_model_is_fed_are_refused_at_open(tmp_path: Path, case: str) -> None:
    model, edit, message = AT_OPEN[case]
    with pytest.raises(ArtifactError) as info:
        Artifacts.open(_edited(tmp_path, model, edit))
    assert info.value.message == message + ADVICE


def _ask(function: Function, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = function.handler()(http_event("http", method, path, body), LambdaContext())
    return int(response["statusCode"]), body_of(response)


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_the_function_is_never_ready_nor_answers_500_once_it_met_the_mismatch(tmp_path: Path, runtime: str) -> None:
    # item_id as int64: every golden request still coerces (its ids are integers), so each reaches the model.
    model_dir = _edited(tmp_path, "recommender", _both("item_id", dtype="int64"))
    cases = zoo.cases("recommender")
    lazy = Function(Settings(model_dir=model_dir, serving_runtime=runtime))  # the template's default
    for case in cases:
        status, body = _ask(lazy, "POST", "/v1/models/recommender:predict", case["request"])
        assert status == 503 and body["code"] == "artifacts_invalid", (case["name"], status, body)
        assert body["error"].startswith(UNAVAILABLE) and "item_id" not in body["error"], body
    status, body = _ask(lazy, "GET", "/v2/health/ready")
    assert (status, body["ready"], body["model_loaded"]) == (503, False, False), body
    status, body = _ask(lazy, "GET", "/v2/models/recommender/ready")
    assert status == 503, body

    eager = Function(Settings(model_dir=model_dir, serving_runtime=runtime, preload_model=True))
    assert eager.service is None and isinstance(eager.startup_error, ArtifactError), eager.startup_error
    assert "input 'item_id' is int64 scalar in the manifest but int32 scalar" in eager.startup_error.message
    status, body = _ask(eager, "GET", "/v2/health/ready")
    assert (status, body["ready"]) == (503, False), body
    status, body = _ask(eager, "POST", "/v1/models/recommender:predict", cases[0]["request"])
    assert (status, body["code"]) == (503, "artifacts_invalid"), body


def test_verify_on_a_signature_the_model_does_not_take_is_one_line_and_exit_1(tmp_path: Path) -> None:
    model_dir = _edited(tmp_path, "sensor", _both("readings", shape=[None, 3]))
    done = subprocess.run(
        [sys.executable, "-m", "handler", "verify", "--runtime", "tensorflow"],
        env={**os.environ, "MODEL_DIR": str(model_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == "", (done.stdout, done.stderr)
    line = (
        "error: manifest.json's signature does not match model.keras: input 'readings' is float32 [any, 3] in the "
        f"manifest but float32 [20, 3] in the model{ADVICE}"
    )
    assert line in done.stderr.splitlines(), done.stderr


def test_every_reference_model_matches_its_own_signature_on_both_runtimes() -> None:
    for model in zoo.MODELS:
        for runtime in ("tensorflow", "litert"):
            service = open_service(Settings(model_dir=zoo.model_dir(model), serving_runtime=runtime))
            service.model.load()  # the comparison passes: nothing was edited
            case = zoo.cases(model)[0]
            zoo.check_v1(model, case, service.predict_v1(case["request"]), f"{model} on {runtime}")

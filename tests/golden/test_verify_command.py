"""`python -m handler verify` and `predict`, as a user runs them: exit codes, and what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.conftest import copy_model, rehash, run_handler
from tests.support import zoo


@pytest.mark.parametrize("name", zoo.MODELS)
def test_verify_passes_for_every_committed_model(name: str) -> None:
    run = run_handler("verify", env={"MODEL_DIR": str(zoo.model_dir(name)), "SERVING_RUNTIME": "auto"})
    assert run.returncode == 0, run.stdout + run.stderr
    # Every committed model passed on LiteRT at export, so `auto` verifies LiteRT.
    assert f"all {len(zoo.cases(name))} golden cases of '{name}' match training on litert" in run.stdout


def test_verify_on_tensorflow_lists_every_case_with_verbose() -> None:
    run = run_handler("verify", "--runtime", "tensorflow", "-v", env={"MODEL_DIR": str(zoo.model_dir("recommender"))})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "match training on tensorflow" in run.stdout
    for case in zoo.cases("recommender"):
        assert case["name"] in run.stdout


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_verify_fails_with_a_table_naming_the_cases_whose_expected_value_was_altered(
    tmp_path: Path, runtime: str
) -> None:
    model_dir = copy_model("recommender", tmp_path / "recommender")
    golden = json.loads((model_dir / "golden.json").read_text())
    altered = {"first_and_last_item", "batch_of_16"}
    for case in golden["cases"]:
        if case["name"] in altered:
            case["expected"]["relevance_score"][-1][0] += 0.01  # far beyond the 1e-5 tolerance
    (model_dir / "golden.json").write_text(json.dumps(golden))
    rehash(model_dir, "golden.json")

    run = run_handler("verify", "--runtime", runtime, env={"MODEL_DIR": str(model_dir)})
    assert run.returncode == 1, run.stdout + run.stderr
    total = len(golden["cases"])
    assert f"2 of {total} golden cases of 'recommender' DIFFER from training ({runtime})" in run.stdout
    table = run.stdout.splitlines()
    assert any(line.split()[:1] == ["case"] for line in table), run.stdout
    differs = {line.split()[0] for line in table if "DIFFERS" in line}
    assert differs == altered
    assert "relevance_score" in run.stdout and "Traceback" not in run.stderr


def test_predict_prints_the_v1_response() -> None:
    case = next(c for c in zoo.cases("recommender") if c["name"] == "keys_reversed")
    run = run_handler("predict", json.dumps(case["request"]), env={"MODEL_DIR": str(zoo.model_dir("recommender"))})
    assert run.returncode == 0, run.stderr
    zoo.check_v1("recommender", case, json.loads(run.stdout), "python -m handler predict")


@pytest.mark.parametrize(
    ("body", "code"),
    [("{not json", None), ('{"instances": [{"age": 3}]}', "invalid_input")],
    ids=["not_json", "missing_features"],
)
def test_predict_explains_a_bad_body_without_a_traceback(body: str, code: str | None) -> None:
    run = run_handler("predict", body, env={"MODEL_DIR": str(zoo.model_dir("churn"))})
    assert run.returncode == 2
    answer = json.loads(run.stdout)
    assert "error" in answer and answer.get("code") == code
    assert "Traceback" not in run.stdout + run.stderr

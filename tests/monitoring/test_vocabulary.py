"""The out-of-vocabulary rate over real tokens: padding ("") counts neither as a word nor as a new one."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from handler.__main__ import main
from handler.core.signature import TensorSpec
from handler.monitoring.baseline import Baseline
from handler.monitoring.emf import emit
from tests.conftest import ROOT, LambdaContext
from tests.monitoring import data
from tests.monitoring.conftest import emf_lines, http_event, make_function
from tests.monitoring.test_report import write_parquet

SPEC = TensorSpec("words", "string", (4,))
# Training: a vocabulary of "good", "bad" and the padding token "".
TRAINING = np.array([["good", "bad", "", ""], ["good", "", "", ""]], dtype=object)
# Served: 8 slots, 3 of them padding; of the 5 real words, "new", "worse" and "odd" are new.
SERVED = np.array([["good", "new", "", ""], ["bad", "worse", "odd", ""]], dtype=object)


def hand_baseline() -> Baseline:
    return Baseline.fit([SPEC], [], {"words": TRAINING}, {})


def test_three_new_words_of_five_real_ones_are_60_percent_not_3_of_8_slots() -> None:
    from handler.monitoring.vocabulary import over_real_tokens

    baseline = hand_baseline()
    report = baseline.compare(baseline.tally({"words": SERVED}, None), rows=2)
    assert report.features["words"].out_of_vocabulary == pytest.approx(3 / 8)  # the drift statistics' own, slots
    assert over_real_tokens(report, baseline.features).features["words"].out_of_vocabulary == pytest.approx(3 / 5)


def test_nothing_but_padding_has_no_rate_and_a_scalar_strings_empty_value_is_a_value() -> None:
    from handler.monitoring.vocabulary import over_real_tokens

    baseline = hand_baseline()
    padding = np.full((2, 4), "", dtype=object)
    report = baseline.compare(baseline.tally({"words": padding}, None), rows=2)
    assert over_real_tokens(report, baseline.features).features["words"].out_of_vocabulary is None
    scalar = Baseline.fit([TensorSpec("c", "string")], [], {"c": np.array(["a", ""], dtype=object)}, {})
    report = scalar.compare(scalar.tally({"c": np.array(["", "new"], dtype=object)}, None), rows=2)
    # A category's "" is a value training had: 1 new of 2, as the drift statistics count it.
    assert over_real_tokens(report, scalar.features).features["c"].out_of_vocabulary == 0.5


def test_the_functions_emf_line_says_the_rate_over_real_tokens() -> None:
    baseline = hand_baseline()
    report = baseline.compare(baseline.tally({"words": SERVED}, None), rows=2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(report, baseline)
    (line,) = [x for x in emf_lines(out.getvalue()) if x["dimensions"].get("feature") == "words"]
    assert line["metrics"]["OutOfVocabularyRate"] == [pytest.approx(3 / 5)]


def new_words(n: int, seed: int) -> tuple[data.Columns, float]:
    """Reviews with a third of their written words replaced by one training never had, and the share of the
    written words that are new, counted here word by word against baseline.json's vocabulary."""
    cols = data.review_words(n, seed)
    words = cols["words"].copy()
    real = np.flatnonzero(words.ravel() != "")
    words.ravel()[np.random.default_rng(seed).choice(real, size=len(real) // 3, replace=False)] = "unheard"
    trained = json.loads((ROOT / "model_artifacts" / "reviews" / "baseline.json").read_text())
    vocabulary = set(trained["features"]["words"]["bins"][0]["values"])
    written = [w for w in words.ravel().tolist() if w != ""]
    return {**cols, "words": words}, sum(w not in vocabulary for w in written) / len(written)


def test_the_reviews_report_counts_new_words_among_the_words_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cols, expected = new_words(1000, 815)
    assert expected == pytest.approx(1 / 3, abs=0.01)
    path = write_parquet(tmp_path / "reviews.parquet", cols)
    capsys.readouterr()
    main(["drift", str(path), "--model-dir", str(ROOT / "model_artifacts" / "reviews")])
    report = json.loads(capsys.readouterr().out)
    assert report["rejected_rows"] == 0
    assert report["features"]["words"]["out_of_vocabulary"] == pytest.approx(expected, abs=1e-9)


def test_the_served_reviews_window_emits_the_rate_over_written_words(capsys: pytest.CaptureFixture) -> None:
    cols, expected = new_words(200, 816)
    handler = make_function("reviews", drift_window=200).handler()
    capsys.readouterr()
    answer = handler(http_event("/v1/models/reviews:predict", {"instances": data.v1_rows(cols)}), LambdaContext())
    assert answer["statusCode"] == 200, answer["body"][:500]
    lines = [x for x in emf_lines(capsys.readouterr().out) if x["dimensions"].get("feature") == "words"]
    assert [x["metrics"]["OutOfVocabularyRate"] for x in lines] == [[pytest.approx(expected, abs=1e-9)]]

"""The problem types' metrics against values worked out by hand (in the comments), and the baseline's thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handler.monitoring.quality.baseline import MetricBaseline, QualityBaseline
from handler.monitoring.quality.metrics import auc, binary, confusion, multiclass, regression

# Positive answers (score >= 0.5): rows 0, 1, 2, 6, 7. TP: 0, 2, 6; FP: 1, 7; FN: 3; TN: 4, 5.
Y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
S = np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.55, 0.5])


def test_binary_metrics_count_a_score_of_one_half_as_positive() -> None:
    got = binary(Y, S)
    # accuracy (3 + 2) / 8; precision 3 / 5; recall 3 / 4; F1 2*3 / (2*3 + 2 + 1)
    assert got["accuracy"] == pytest.approx(0.625)
    assert got["precision"] == pytest.approx(0.6)
    assert got["recall"] == pytest.approx(0.75)
    assert got["f1"] == pytest.approx(6 / 9)
    # positives 0.9, 0.6, 0.4, 0.55 beat negatives 0.8, 0.3, 0.2, 0.5 in 4 + 3 + 2 + 3 of 16 pairs
    assert got["auc"] == pytest.approx(12 / 16)
    assert confusion("binary", Y, S) == [[2, 2], [1, 3]]  # [[TN, FP], [FN, TP]]


def test_auc_counts_a_tie_half() -> None:
    # pairs: (0.5 vs 0.5) half, (0.5 vs 0.1) one, (0.7 vs 0.5) one, (0.7 vs 0.1) one: 3.5 of 4
    assert auc(np.array([1, 1, 0, 0]), np.array([0.5, 0.7, 0.5, 0.1])) == pytest.approx(3.5 / 4)


def test_metrics_the_rows_cannot_define_are_none() -> None:
    got = binary(np.array([1.0, 1.0, 0.0]), np.array([0.1, 0.2, 0.3]))  # nothing answered positive
    assert got["precision"] is None and got["recall"] == 0.0 and got["f1"] == 0.0
    assert binary(np.array([1.0, 1.0]), np.array([0.1, 0.9]))["auc"] is None  # one class of labels
    assert regression(np.array([2.0, 2.0]), np.array([1.0, 3.0]))["r2"] is None  # constant labels


def test_multiclass_metrics_are_weighted_by_each_class_share_of_the_labels() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    answered = [0, 1, 1, 1, 2, 0, 2, 0]
    scores = np.eye(3)[answered] * 0.8 + 0.1
    got = multiclass(labels, scores)
    # matrix [[2, 1, 0], [0, 2, 0], [1, 0, 2]]; support 3, 2, 3; answered 3, 3, 2
    assert confusion("multiclass", labels, scores, 3) == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert got["accuracy"] == pytest.approx(6 / 8)
    # precision 2/3, 2/3, 1 weighted 3/8, 2/8, 3/8
    assert got["weighted_precision"] == pytest.approx(3 / 8 * 2 / 3 + 2 / 8 * 2 / 3 + 3 / 8 * 1)
    assert got["weighted_recall"] == pytest.approx(3 / 8 * 2 / 3 + 2 / 8 * 1 + 3 / 8 * 2 / 3)
    # F1 = 2 hits / (answered + support): 4/6, 4/5, 4/5
    assert got["weighted_f1"] == pytest.approx(3 / 8 * 4 / 6 + 2 / 8 * 0.8 + 3 / 8 * 0.8)


def test_regression_metrics() -> None:
    got = regression(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0]))
    # errors 0.5, 0, -1, 1; labels' mean 2.5, squares about it 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert got["mae"] == pytest.approx(2.5 / 4)
    assert got["mse"] == pytest.approx(2.25 / 4)
    assert got["rmse"] == pytest.approx(0.75)
    assert got["r2"] == pytest.approx(1 - 2.25 / 5)


def test_a_threshold_is_the_intervals_standard_error_at_both_sizes_at_the_false_alarm_rate() -> None:
    base = QualityBaseline("binary", "output_0", 4000, {"accuracy": MetricBaseline(0.8, (0.78, 0.82))})
    # se = 0.04 / (2 * 1.959964) = 0.0102; z(0.999) = 3.090232; sqrt(1 + 4000 / 1000) = 2.236068
    assert base.threshold("accuracy", 1000) == pytest.approx(3.090232 * 0.04 / (2 * 1.959964) * math.sqrt(5), 1e-5)
    compared, degraded = base.compare({"accuracy": 0.72}, 1000)
    assert degraded == ["accuracy"] and compared["accuracy"]["worse_by"] == pytest.approx(0.08)
    assert base.compare({"accuracy": 0.79}, 1000)[1] == []


def test_a_threshold_written_by_hand_replaces_the_computed_one_and_lower_is_better_for_errors() -> None:
    base = QualityBaseline("regression", "y", 100, {"mae": MetricBaseline(0.5, (0.4, 0.6), threshold=0.05)})
    assert base.threshold("mae", 10) == 0.05
    assert base.compare({"mae": 0.56}, 10)[1] == ["mae"] and base.compare({"mae": 0.3}, 10)[1] == []


def test_a_perfect_validation_score_is_widened_to_one_row() -> None:
    base = QualityBaseline("multiclass", "p", 2000, {"accuracy": MetricBaseline(1.0, (1.0, 1.0))})
    # se floored at 1 / 2000; z(0.999) * 0.0005 * sqrt(1 + 2000 / 1000)
    assert base.threshold("accuracy", 1000) == pytest.approx(3.090232 * 0.0005 * math.sqrt(3), 1e-5)
    assert base.compare({"accuracy": 0.999}, 1000)[1] == []  # one error in a thousand is no alarm

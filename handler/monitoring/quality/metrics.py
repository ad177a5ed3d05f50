"""The problem types' metrics, from labels and the model's answers (numpy only: the image has no scikit-learn).

- binary: accuracy, precision, recall and F1 of the positive class (label 1; answered when its score is at
  least 0.5), AUC (the Mann-Whitney statistic, tied scores counted half) and the confusion matrix
  `[[TN, FP], [FN, TP]]` (rows: the label, columns: the answer);
- multiclass: accuracy and the weighted precision, recall and F1 (each class weighted by its share of the
  labels; a class never answered has precision 0, as scikit-learn's default), and the k x k confusion matrix;
- regression: MAE, MSE, RMSE and R².

A metric the rows cannot define (precision with no positive answer, AUC with one class of labels, R² of
constant labels) is None: no number is made up for it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

ProblemType = Literal["binary", "multiclass", "regression"]
PROBLEMS: tuple[ProblemType, ...] = ("binary", "multiclass", "regression")
METRICS: dict[ProblemType, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "auc"),
    "multiclass": ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1"),
    "regression": ("mae", "mse", "rmse", "r2"),
}
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse"})
# What slices are ranked by: a metric every sample of one row or more defines.
PRIMARY: dict[ProblemType, str] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}
POSITIVE_SCORE = 0.5

Metrics = dict[str, float | None]


def compute(problem: ProblemType, labels: np.ndarray, answers: np.ndarray) -> Metrics:
    """The problem's metrics: binary answers are scores of the positive class, multiclass ones [n, k] scores,
    regression ones the predicted values; labels are 0/1, class indices, or values."""
    if problem == "binary":
        return binary(labels, answers)
    if problem == "multiclass":
        return multiclass(labels, answers)
    return regression(labels, answers)


def worsening(name: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference` (negative: better), whichever way the metric points."""
    return value - reference if name in LOWER_IS_BETTER else reference - value


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def binary(labels: np.ndarray, scores: np.ndarray) -> Metrics:
    y = labels.astype(bool)
    answered = scores >= POSITIVE_SCORE
    tp = int(np.count_nonzero(y & answered))
    fp = int(np.count_nonzero(~y & answered))
    fn = int(np.count_nonzero(y & ~answered))
    n = len(y)
    return {
        "accuracy": (n - fp - fn) / n if n else None,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": auc(y, scores),
    }


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The chance that a positive row scores above a negative one (ties half): the area under the ROC curve."""
    y = labels.astype(bool)
    positives = int(np.count_nonzero(y))
    negatives = len(y) - positives
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # tied scores share their ranks' mean
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def confusion(problem: ProblemType, labels: np.ndarray, answers: np.ndarray, classes: int = 2) -> list[list[int]]:
    """Rows: the label; columns: the answer (binary: negative, positive)."""
    if problem == "binary":
        y, answered, k = labels.astype(np.intp), (answers >= POSITIVE_SCORE).astype(np.intp), 2
    else:
        y, answered, k = labels.astype(np.intp), np.argmax(answers, axis=1), classes
    matrix: list[list[int]] = np.bincount(y * k + answered, minlength=k * k).reshape(k, k).tolist()
    return matrix


def multiclass(labels: np.ndarray, scores: np.ndarray) -> Metrics:
    n, k = scores.shape
    if not n:
        return dict.fromkeys(METRICS["multiclass"])
    y = labels.astype(np.intp)
    matrix = np.bincount(y * k + np.argmax(scores, axis=1), minlength=k * k).reshape(k, k).astype(np.float64)
    hits = np.diag(matrix)
    support, answered = matrix.sum(axis=1), matrix.sum(axis=0)
    weights = support / n
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(answered > 0, hits / answered, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(answered + support > 0, 2 * hits / (answered + support), 0.0)
    return {
        "accuracy": float(hits.sum() / n),
        "weighted_precision": float(weights @ precision),
        "weighted_recall": float(weights @ recall),
        "weighted_f1": float(weights @ f1),
    }


def regression(labels: np.ndarray, predicted: np.ndarray) -> Metrics:
    if not len(labels):
        return dict.fromkeys(METRICS["regression"])
    error = predicted.astype(np.float64) - labels.astype(np.float64)
    mse = float(np.mean(error * error))
    spread = float(np.sum((labels - labels.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": 1.0 - float(np.sum(error * error)) / spread if spread > 0 else None,
    }

"""The drift watch's EMF lines are the documents Powertools serialises, whatever the feature's name.

The watch formats each line from a form Powertools serialised once per feature (values and timestamp
filled in per window); here every line is parsed back and compared with what Powertools'
`serialize_metric_set` gives for the same metrics and dimensions, the timestamp aside.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import replace
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics

from handler.monitoring.dispersion import Dispersion
from handler.monitoring.drift import Drift, DriftReport
from handler.monitoring.emf import emit
from tests.monitoring.conftest import log_messages


def _drift(name: str, score: float, spread: Dispersion | None = None, **rates: float) -> Drift:
    drifted = score > 0.1 or (spread is not None and spread.score > 0.1)
    return Drift(
        name=name,
        kind="numeric",
        score=score,
        drifted=drifted,
        values=10,
        channel=None,
        served=(),
        dispersion=spread,
        **rates,
    )


# As Lambda sets them for a published version invoked through an alias.
LAMBDA_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "skewless-prod-InferenceFunction-1A2B3C", "AWS_LAMBDA_FUNCTION_VERSION": "7"}
DEPLOYED = {"function": "skewless-prod-InferenceFunction-1A2B3C", "version": "7"}


@pytest.fixture(autouse=True)
def _in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAMBDA_ENV.items():
        monkeypatch.setenv(name, value)


def _emitted(report: DriftReport) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit(report)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_each_line_is_what_powertools_serialises() -> None:
    # Names with JSON and str.format specials in them, and values json writes in exponent form.
    features = {
        'a "quoted" {name}': _drift('a "quoted" {name}', 1e-7, out_of_range=0.0, imputed=0.25),
        "plain": _drift("plain", 0.3333333333333333, out_of_range=1 / 3),
        "never served": _drift("never served", math.nan),
    }
    outputs = {"p": _drift("p", 12.5)}
    report = DriftReport(rows=10, threshold=0.1, features=features, outputs=outputs)
    lines = _emitted(report)
    assert len(lines) == 4  # two features with a score, one output, the summary: "never served" has no line

    namespace = lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    emf = EphemeralMetrics(namespace=namespace, service="skewless")
    wanted = [
        (
            "feature",
            'a "quoted" {name}',
            {"FeatureDrift": 1e-7, "FeaturePSI": 1e-7, "OutOfRangeRate": 0.0, "ImputedRate": 0.25},
        ),
        ("feature", "plain", {"FeatureDrift": 1 / 3, "FeaturePSI": 1 / 3, "OutOfRangeRate": 1 / 3}),
        ("output", "p", {"PredictionDrift": 12.5, "PredictionPSI": 12.5}),
    ]
    for line, (dimension, name, values) in zip(lines, wanted, strict=False):
        metrics = {k: {"Unit": "None", "Value": [v]} for k, v in values.items()}
        expected = emf.serialize_metric_set(
            metrics=metrics, dimensions={dimension: name, "service": "skewless", **DEPLOYED}, metadata={}
        )
        assert isinstance(line["_aws"].pop("Timestamp"), int)
        expected["_aws"].pop("Timestamp")  # type: ignore[misc]
        assert line == json.loads(json.dumps(expected))


def test_every_drift_series_is_the_function_s_and_the_version_s_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """During a canary the new version's windows must not feed the old version's series, nor another stack's."""
    report = DriftReport(rows=10, threshold=0.1, features={"age": _drift("age", 0.5)}, outputs={"p": _drift("p", 0.2)})
    for version in ("7", "8"):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", version)
        lines = _emitted(report)
        names = [m["Name"] for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        assert names == [
            *("FeatureDrift", "FeaturePSI", "PredictionDrift", "PredictionPSI"),
            *("DriftedFeatures", "DriftedPredictions", "FeatureDriftMax", "PredictionDriftMax"),
        ]
        for line in lines:
            [dimensions] = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            assert {"function", "version", "service"} <= set(dimensions), dimensions
            assert (line["function"], line["version"]) == (DEPLOYED["function"], version), line
    summary = lines[-1]
    assert summary["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "function", "version"]], summary
    assert (summary["FeatureDriftMax"], summary["PredictionDriftMax"]) == ([0.5], [0.2]), summary
    assert (summary["DriftedFeatures"], summary["DriftedPredictions"]) == ([1], [1]), summary


def test_a_feature_flagged_by_its_dispersion_alone_raises_the_alarmed_count(
    logs: io.StringIO,
) -> None:
    """DriftedFeatures, the series the alarm reads, counts a feature whose PSI or dispersion passed its threshold: a
    spread doubled (dispersion 0.75) under a small PSI (0.03) is counted; FeatureDriftMax is the largest of both."""
    features = {
        "readings": _drift("readings", 0.03, Dispersion(0.75, "step_std", 2, 0.43)),
        "age": _drift("age", 0.05, Dispersion(0.02, "std", None, 1.0)),
        "words": _drift("words", 0.2),  # tokens: no dispersion score
    }
    outputs = {"p": _drift("p", 0.01, Dispersion(0.125, "std", None, 0.3))}
    lines = [line for line in _emitted(DriftReport(10, 0.1, features, outputs)) if "_aws" in line]
    by_name = {line.get("feature", line.get("output")): line for line in lines[:-1]}
    # Each value by hand: the drift score is the larger of the two, each statistic also in a series of its own.
    assert (by_name["readings"]["FeatureDrift"], by_name["readings"]["FeaturePSI"]) == ([0.75], [0.03])
    assert by_name["readings"]["FeatureDispersion"] == [0.75]
    assert (by_name["age"]["FeatureDrift"], by_name["age"]["FeatureDispersion"]) == ([0.05], [0.02])
    assert by_name["words"]["FeatureDrift"] == [0.2] and "FeatureDispersion" not in by_name["words"]
    assert (by_name["p"]["PredictionDrift"], by_name["p"]["PredictionDispersion"]) == ([0.125], [0.125])
    summary = lines[-1]
    assert summary["FeatureDriftMax"] == [0.75], "the dispersion-only feature must reach the alarmed series"
    assert summary["PredictionDriftMax"] == [0.125]
    assert summary["DriftedFeatures"] == [2]  # readings (dispersion) and words (PSI)
    (warning,) = [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]
    assert summary["DriftedPredictions"] == [1]
    assert warning["drifted_features"] == {
        "readings": {
            "psi": 0.03,
            "threshold": 0.1,
            "dispersion": 0.75,
            "dispersion_channel": 2,
            "flagged_by": ["step_std"],
        },
        "words": {"psi": 0.2, "threshold": 0.1, "flagged_by": ["psi"]},
    }, warning
    assert warning["drifted_outputs"] == {
        "p": {"psi": 0.01, "threshold": 0.1, "dispersion": 0.125, "flagged_by": ["std"]}
    }


def test_each_feature_is_judged_by_its_own_threshold(logs: io.StringIO) -> None:
    """Calibrated thresholds differ by feature: 0.05 is drift for a feature whose windows score ~0.01 by chance
    (threshold 0.03) and not for one whose chance windows reach 0.08 (threshold 0.1). Values written here."""
    features = {
        "tight": replace(_drift("tight", 0.05), drifted=True, threshold=0.03),
        "loose": replace(_drift("loose", 0.08), drifted=False, threshold=0.1),
    }
    lines = [line for line in _emitted(DriftReport(1000, None, features, {})) if "_aws" in line]
    summary = lines[-1]
    assert summary["DriftedFeatures"] == [1] and "DriftedPredictions" not in summary
    assert summary["FeatureDriftMax"] == [0.08]
    (warning,) = [m for m in log_messages(logs) if m["message"] == "served data drifted from training"]
    assert warning["threshold"] == "calibrated"
    assert warning["drifted_features"] == {"tight": {"psi": 0.05, "threshold": 0.03, "flagged_by": ["psi"]}}

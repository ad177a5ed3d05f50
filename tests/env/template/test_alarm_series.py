"""The rollback alarms name exactly the series the function emits: a CloudWatch alarm on a metric matches only the
series with the very same namespace, name and set of dimensions, so one dimension more or less on either side and
the alarm watches nothing (and never rolls back).

The function's EMF lines are made by its own code (handler/observability.py's count_5xx, the emit of
handler/monitoring/emf.py and of handler/monitoring/quality/emf.py) under the environment Lambda gives a published
version invoked through an alias; the alarms are read off SAM's transformed template, where `function` is the
function's name and `version` the new version.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import pytest

from handler.monitoring.drift import Drift, DriftReport
from handler.monitoring.emf import emit
from handler.monitoring.quality.baseline import MetricBaseline, QualityBaseline
from handler.monitoring.quality.emf import emit as quality_emit
from handler.monitoring.quality.evaluate import Evaluation
from handler.monitoring.quality.problem import Problem
from handler.observability import count_5xx
from tests.env.template.test_template import _translate, _version_id
from tests.support.samcli import ensure_sam_cli

# What Lambda sets for version 7 of the function, invoked through its alias.
LAMBDA_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "skewless-InferenceFunction-1A2B3C", "AWS_LAMBDA_FUNCTION_VERSION": "7"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    ensure_sam_cli()
    return _translate([])


@pytest.fixture(autouse=True)
def _in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAMBDA_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def _printed(action: Any) -> dict[str, dict[str, Any]]:
    """{metric name: {"namespace", "dimensions" (name -> value)}} of every EMF line `action` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        action()
    series: dict[str, dict[str, Any]] = {}
    for line in out.getvalue().splitlines():
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        (dimension_set,) = directive["Dimensions"]
        for metric in directive["Metrics"]:
            series[metric["Name"]] = {
                "namespace": directive["Namespace"],
                "dimensions": {name: doc[name] for name in dimension_set},
            }
    return series


def _as_emitted(template: dict[str, Any], dimensions: list[dict[str, Any]]) -> dict[str, str]:
    """An alarm's dimensions with the values this version of this function has (as Lambda would set them)."""
    env = template["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    known = {
        json.dumps({"Ref": "InferenceFunction"}): LAMBDA_ENV["AWS_LAMBDA_FUNCTION_NAME"],
        json.dumps({"Fn::GetAtt": [_version_id(template), "Version"]}): LAMBDA_ENV["AWS_LAMBDA_FUNCTION_VERSION"],
        json.dumps(env["POWERTOOLS_SERVICE_NAME"]): env["POWERTOOLS_SERVICE_NAME"],
    }
    out = {}
    for d in dimensions:
        value = json.dumps(d["Value"])
        assert value in known, f"dimension {d['Name']} = {value}: not a value the function emits"
        out[d["Name"]] = known[value]
    return out


def _drift(name: str, score: float) -> Drift:
    return Drift(name=name, kind="numeric", score=score, drifted=score > 0.1, values=10, channel=None, served=())


def test_the_5xx_alarm_watches_the_series_count_5xx_emits(template: dict[str, Any]) -> None:
    emitted = _printed(count_5xx)["Http5xx"]
    props = template["Resources"]["Http5xxRateAlarm"]["Properties"]
    (metric,) = [m["MetricStat"]["Metric"] for m in props["Metrics"] if m["Id"] == "http5xx"]
    assert metric["MetricName"] == "Http5xx"
    assert metric["Namespace"] == _namespace(template, emitted)
    assert _as_emitted(template, metric["Dimensions"]) == emitted["dimensions"]


@pytest.mark.parametrize(
    ("alarm", "metric"), [("FeatureDriftAlarm", "DriftedFeatures"), ("PredictionDriftAlarm", "DriftedPredictions")]
)
def test_the_drift_alarms_watch_the_series_the_drift_watch_emits(
    template: dict[str, Any], alarm: str, metric: str
) -> None:
    report = DriftReport(rows=10, threshold=0.1, features={"age": _drift("age", 0.5)}, outputs={"p": _drift("p", 0.2)})
    emitted = _printed(lambda: emit(report))[metric]
    props = template["Resources"][alarm]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (_namespace(template, emitted), metric)
    assert _as_emitted(template, props["Dimensions"]) == emitted["dimensions"]


def test_the_quality_alarm_watches_the_series_the_labels_trigger_emits(template: dict[str, Any]) -> None:
    baseline = QualityBaseline("binary", "p", 400, {"accuracy": MetricBaseline(0.8, (0.76, 0.84))})
    compared, degraded = baseline.compare({"accuracy": 0.7}, 100)
    evaluation = Evaluation(Problem("binary", "p", 1), 100, 0, 0, {"accuracy": 0.7}, [], compared, degraded, {}, [])
    emitted = _printed(lambda: quality_emit(evaluation))["ModelQualityDegradation"]
    props = template["Resources"]["ModelQualityAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (_namespace(template, emitted), "ModelQualityDegradation")
    assert _as_emitted(template, props["Dimensions"]) == emitted["dimensions"]


def _namespace(template: dict[str, Any], emitted: dict[str, Any]) -> str:
    """The namespace the deployed function emits in: the code follows POWERTOOLS_METRICS_NAMESPACE (the tests set
    their own), which the template sets."""
    assert emitted["namespace"] == os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "skewless"), emitted
    namespace: str = template["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    return namespace

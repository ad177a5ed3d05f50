"""Model quality as EMF metrics: one line per metric and one for the whole, each with the function's dimensions.

- `ModelQuality` (dimension `metric`): each metric of the labelled rows (accuracy, auc, mae, ...);
- `ModelQualityDegradation`, with no dimension of its own: the largest share of its threshold any metric is worse
  than the quality baseline by (1 or more: that metric degraded). A CloudWatch alarm watches one series, and this
  is the "any metric" series it alarms on, as FeatureDriftMax is the drift watch's;
- `DegradedMetrics` and `LabelledRows` (Count) beside it.

Every line also has `service`, `function` and `version`, as the drift watch's (`observability.deployment`).
"""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from handler.monitoring.quality.evaluate import Evaluation
from handler.observability import SERVICE, deployment, emf_serializer


def degradation(evaluation: Evaluation) -> float | None:
    """The largest worsening over its threshold of any metric; None without a baseline to compare with."""
    shares = [
        m["worse_by"] / m["threshold"]
        for m in (evaluation.baseline or {}).values()
        if m["worse_by"] is not None and m["threshold"]
    ]
    return max(shares) if shares else None


def lines(evaluation: Evaluation) -> list[str]:
    """The EMF lines of one evaluation (none of the metrics a sample of no row has)."""
    emf = emf_serializer()
    deployed = {"service": SERVICE, **deployment()}
    out = []
    for name, value in evaluation.metrics.items():
        if value is None:
            continue
        line = emf.serialize_metric_set(
            metrics={"ModelQuality": {"Unit": MetricUnit.NoUnit.value, "Value": [float(value)]}},
            dimensions={"metric": name, **deployed},
            metadata={},
        )
        out.append(json.dumps(line, separators=(",", ":")))
    count = MetricUnit.Count.value
    summary = {
        "LabelledRows": {"Unit": count, "Value": [float(evaluation.rows_joined)]},
        "DegradedMetrics": {"Unit": count, "Value": [float(len(evaluation.degraded))]},
    }
    worst = degradation(evaluation)
    if worst is not None:
        summary["ModelQualityDegradation"] = {"Unit": MetricUnit.NoUnit.value, "Value": [worst]}
    line = emf.serialize_metric_set(metrics=summary, dimensions=deployed, metadata={})
    out.append(json.dumps(line, separators=(",", ":")))
    return out


def emit(evaluation: Evaluation) -> None:
    """Print the lines now, within the invocation: Lambda sends the function's stdout to CloudWatch Logs."""
    if not is_metrics_disabled():
        print("\n".join(lines(evaluation)))

"""The drift watch's adapter: a DriftMonitor on the service, its reports as EMF metrics and one log line.

Per window, one EMF line per feature and per output, each with one dimension value, so CloudWatch
keeps one series per feature:
- `FeatureDrift` (dimension `feature`): the feature's drift score, the largest of its PSI against
  training (`FeaturePSI`), its dispersion score (`FeatureDispersion`) and its shift score (`shift`), where
  it has them: a feature has drifted when any passes its threshold (calibrated at export). With
  `OutOfRangeRate`, `OutOfVocabularyRate` and `ImputedRate` where the feature has them;
- `PredictionDrift` (dimension `output`), with `PredictionPSI` and `PredictionDispersion`, alike;
- `ChannelDrift` (dimensions `feature` and `channel`; `PredictionChannelDrift`, `output` and `channel`): for each
  channel of a tensor that passed the threshold, the largest of its PSI, dispersion and shift score. Only drifted
  channels, so the series stay few; the alarmed series keep their dimensions;
- `DriftedFeatures` and `DriftedPredictions` (the window's drifted features and outputs, each judged
  by its own threshold), `FeatureDriftMax` and `PredictionDriftMax` (the largest scores), with no extra
  dimension: a CloudWatch alarm watches one series with fixed dimensions, and the alarms read the counts,
  as thresholds differ from feature to feature.

Every line also carries `function` and `version` (`observability.deployment`): during a canary the new
version is judged on its own traffic, and two stacks never share a series.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from handler.core.artifacts import BASELINE_FILE
from handler.core.service import Prediction, Service
from handler.observability import SERVICE, deployment, emf_serializer, logger
from handler.settings import Settings

if TYPE_CHECKING:
    from handler.monitoring.baseline import Baseline
    from handler.monitoring.drift import Drift, DriftReport
    from handler.monitoring.window import DriftMonitor

# One encoder for every line: json.dumps with separators builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
RATES = (("out_of_range", "OutOfRangeRate"), ("out_of_vocabulary", "OutOfVocabularyRate"), ("imputed", "ImputedRate"))


def attach(service: Service, settings: Settings) -> DriftWatch | None:
    """Watch the service's batches for drift, if the export wrote a baseline; say once why not otherwise."""
    if settings.drift_window == 0:
        logger.info("drift watch off (DRIFT_WINDOW=0)")
        return None
    artifacts = service.artifacts
    if BASELINE_FILE not in artifacts.manifest.files:
        logger.info(
            f"drift watch off: the model's artifacts have no {BASELINE_FILE} "
            f"(export_model(..., training_data=...) writes it)"
        )
        return None
    watch = DriftWatch(artifacts.model_dir / BASELINE_FILE, settings.drift_window, settings.drift_threshold)
    service.observers.append(watch.observe)
    logger.info("drift watch on", extra={"window": settings.drift_window, "threshold": settings.drift_threshold})
    return watch


class DriftWatch:
    """The service's DriftMonitor, built at the first served batch.

    The statistics code and the baseline are loaded then, not at init: a cold start that only answers
    health or metadata requests does not pay for them (about 10 ms of imports here).
    """

    def __init__(self, path: Path, window: int, threshold: float | None) -> None:
        self.path, self.window, self.threshold = path, window, threshold
        self._monitor: DriftMonitor | None = None
        self._failed = False
        self._lock = threading.Lock()

    @property
    def monitor(self) -> DriftMonitor | None:
        """The monitor (built now if not yet), or None when the baseline cannot be read."""
        if self._monitor is None and not self._failed:
            with self._lock:
                if self._monitor is None and not self._failed:
                    self._monitor = self._build()
                    self._failed = self._monitor is None
        return self._monitor

    @property
    def reports(self) -> int:
        return self._monitor.reports if self._monitor is not None else 0

    def observe(self, columns: Mapping[str, np.ndarray], prediction: Prediction) -> None:
        monitor = self.monitor
        if monitor is not None:
            monitor.observe(columns, prediction)

    def _build(self) -> DriftMonitor | None:
        from handler.monitoring.baseline import Baseline
        from handler.monitoring.window import DriftMonitor

        try:
            baseline = Baseline.load(self.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The file passed its hash check, so an export wrote it: a format this server does not read.
            logger.warning(f"drift watch off: {BASELINE_FILE} cannot be read ({exc}); re-export the model to watch it")
            return None
        return DriftMonitor(baseline, self.window, self.threshold, on_report=functools.partial(emit, baseline=baseline))


def emit(report: DriftReport, baseline: Baseline | None = None) -> None:
    """One window's report as EMF lines (printed now, within the invocation) and, if anything drifted, a warning.

    With the baseline, a token feature's OutOfVocabularyRate is over its real tokens (`vocabulary`)."""
    if baseline is not None and any(d.kind == "tokens" for d in report.features.values()):
        from handler.monitoring.vocabulary import over_real_tokens

        report = over_real_tokens(report, baseline.features)
    if not is_metrics_disabled():
        emf = _serializer()
        stamp = str(int(time.time() * 1000))
        lines = [_line("feature", d, "Feature", stamp) for d in report.features.values()]
        lines += [_line("output", d, "Prediction", stamp) for d in report.outputs.values()]
        lines += _channel_lines("feature", report.features.values(), "ChannelDrift", stamp)
        lines += _channel_lines("output", report.outputs.values(), "PredictionChannelDrift", stamp)
        summary: dict[str, float] = {"DriftedFeatures": len(report.drifted_names())}
        if report.outputs:
            summary["DriftedPredictions"] = len(report.drifted_names("outputs"))
        feature_scores = [d.decision for d in report.features.values() if not math.isnan(d.decision)]
        output_scores = [d.decision for d in report.outputs.values() if not math.isnan(d.decision)]
        if feature_scores:
            summary["FeatureDriftMax"] = max(feature_scores)
        if output_scores:
            summary["PredictionDriftMax"] = max(output_scores)
        units = {"DriftedFeatures": MetricUnit.Count.value, "DriftedPredictions": MetricUnit.Count.value}
        metrics = {k: {"Unit": units.get(k, MetricUnit.NoUnit.value), "Value": [v]} for k, v in summary.items()}
        dimensions = {"service": SERVICE, **deployment()}
        summary_line = emf.serialize_metric_set(metrics=metrics, dimensions=dimensions, metadata={})
        print("\n".join([*(line for line in lines if line is not None), _COMPACT.encode(summary_line)]))
    drifted, predictions = report.drifted_names(), report.drifted_names("outputs")
    if drifted or predictions:
        logger.warning(
            "served data drifted from training",
            extra={
                "rows": report.rows,
                "threshold": "calibrated" if report.threshold is None else report.threshold,
                "drifted_features": {n: flagged_by(report.features[n]) for n in drifted},
                "drifted_outputs": {n: flagged_by(report.outputs[n]) for n in predictions},
            },
        )


def flagged_by(drift: Drift) -> dict[str, Any]:
    """What the warning says of one drifted feature: its scores, its threshold and the statistics over it."""
    threshold = drift.threshold
    out: dict[str, Any] = {"psi": None if math.isnan(drift.score) else round(drift.score, 4)}
    out["threshold"] = round(threshold, 4)
    by = ["psi"] if drift.score > threshold else []
    if drift.dispersion is not None:
        out["dispersion"] = round(drift.dispersion.score, 4)
        if drift.dispersion.score > threshold:
            by.append(drift.dispersion.of)  # std, step_std or concentration
        if drift.dispersion.channel is not None:
            out["dispersion_channel"] = drift.dispersion.channel
    if drift.shift is not None:
        out["shift"] = round(drift.shift, 4)
        if drift.shift > threshold:
            by.append("mean")
    if drift.drifted_channels is not None:
        out["channels"] = [c for c, _ in drift.drifted_channels]
    out["flagged_by"] = by
    return out


def _channel_lines(dimension: str, drifts: Iterable[Drift], metric: str, stamp: str) -> list[str]:
    """One line per drifted channel of a tensor, under the dimensions (feature or output, channel): only drifted
    channels, so a watch keeps a few series of them, not one per channel of every tensor for every window."""
    lines = []
    for drift in drifts:
        for channel, score in drift.drifted_channels or ():
            metrics = {metric: {"Unit": MetricUnit.NoUnit.value, "Value": [score]}}
            dimensions = {dimension: drift.name, "channel": str(channel), "service": SERVICE, **deployment()}
            line: dict[str, Any] = dict(
                _serializer().serialize_metric_set(metrics=metrics, dimensions=dimensions, metadata={})
            )
            line["_aws"] = {**line["_aws"], "Timestamp": int(stamp)}
            lines.append(_COMPACT.encode(line))
    return lines


def _line(dimension: str, drift: Drift, prefix: str, stamp: str) -> str | None:
    """One EMF line: the scores and the rates of one feature (or output), under its one dimension value."""
    score = drift.decision
    if math.isnan(score):
        return None  # nothing of it was served in the window (every row refused): no value to report
    values = {prefix + "Drift": score}
    if not math.isnan(drift.score):
        values[prefix + "PSI"] = drift.score
    if drift.dispersion is not None and not math.isnan(drift.dispersion.score):
        values[prefix + "Dispersion"] = drift.dispersion.score
    for attr, metric in RATES:
        value = getattr(drift, attr)
        if value is not None:
            values[metric] = value
    form = _form(dimension, drift.name, tuple(values), tuple(deployment().items()))
    return form.format(stamp, *(repr(float(v)) for v in values.values()))


@functools.cache
def _form(dimension: str, name: str, metric_names: tuple[str, ...], deployed: tuple[tuple[str, str], ...]) -> str:
    """The EMF line of one feature's metrics as Powertools serialises it, with its timestamp and values left as
    `str.format` fields: a window then costs a format per line, not a serialisation and a JSON encoding (14 lines
    for churn: ~130 us, most of the watch's fixed cost per window). Floats are written as json writes them."""
    # Placeholders with a NUL in them: no feature name holds one, so nothing else in the line can match.
    mark = [f"\0{i}\0" for i in range(len(metric_names) + 1)]
    metrics = {k: {"Unit": MetricUnit.NoUnit.value, "Value": [mark[i + 1]]} for i, k in enumerate(metric_names)}
    dimensions = {dimension: name, "service": SERVICE, **dict(deployed)}
    line: dict[str, Any] = dict(_serializer().serialize_metric_set(metrics=metrics, dimensions=dimensions, metadata={}))
    line["_aws"] = {**line["_aws"], "Timestamp": mark[0]}
    text = _COMPACT.encode(line).replace("{", "{{").replace("}", "}}")
    for i, m in enumerate(mark):
        text = text.replace(_COMPACT.encode(m), "{" + str(i) + "}")
    return text


def _serializer() -> EphemeralMetrics:
    """One serializer for all windows, in the namespace of the function's own metrics (alarms find both there)."""
    return emf_serializer()

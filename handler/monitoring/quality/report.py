"""`python -m handler quality CAPTURED LABELS [--html PAGE [--history DIR]]`: captured rows joined with labels, the
metrics against training (and a page of them, `html.py`, with earlier reports over time, `history.py`).

Both are a JSON Lines file or every object under an `s3://bucket/prefix/` (data capture's, say). Prints

    {"model": "churn", "version": "1", "problem": {"type": "binary", "output": "output_0", "from": ...},
     "rows_joined": 1000, "unmatched_labels": 3, "unlabelled_rows": 12, "malformed_labels": {...},
     "metrics": {"accuracy": 0.81, ..., "confusion_matrix": [[...], [...]]},
     "baseline": {"accuracy": {"value": 0.81, "baseline": 0.82, "threshold": 0.04, "degraded": false, ...}},
     "degraded": [], "slices": {"worst": [...], "by_feature": {...}}}

Exit status: 0 no metric is worse than the baseline by more than its threshold (or there is no baseline), 1 one
is, 2 an input, the model or the baseline cannot be read. The model is not loaded: the manifest, `baseline.json`
(the slices) and `quality_baseline.json` (or `--baseline FILE`) are all it needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from handler.core.artifacts import BASELINE_FILE, QUALITY_FILE, Artifacts
from handler.monitoring.baseline import Baseline
from handler.monitoring.quality.baseline import QualityBaseline
from handler.monitoring.quality.evaluate import Evaluation, evaluate
from handler.monitoring.quality.join import Joined
from handler.monitoring.quality.labels import Labels
from handler.monitoring.quality.problem import ProblemError, resolve
from handler.monitoring.quality.slices import Slicer
from handler.monitoring.report.readers import DriftInputError, Source, sources


class QualityInputError(Exception):
    """An input, the model's files or the baseline cannot be read: the message says which and why."""


def load_baseline(artifacts: Artifacts, path: Path | None) -> QualityBaseline | None:
    """`--baseline FILE`, else the artifact's quality_baseline.json; None if it has none."""
    if path is None and QUALITY_FILE not in artifacts.manifest.files:
        return None
    path = path or artifacts.model_dir / QUALITY_FILE
    try:
        return QualityBaseline.load(path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise QualityInputError(f"{path} cannot be read as a quality baseline: {exc}") from None


def slicer_of(artifacts: Artifacts) -> Slicer | None:
    """The slices: the drift baseline's bins (None without baseline.json: no slices)."""
    if BASELINE_FILE not in artifacts.manifest.files:
        return None
    try:
        return Slicer.from_baseline(Baseline.load(artifacts.model_dir / BASELINE_FILE))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QualityInputError(f"{BASELINE_FILE} cannot be read: {exc}") from None


def _lines(target: str, s3: Any) -> list[Source]:
    found = sources(target, s3)
    other = [s.name for s in found if s.fmt != "jsonl"]
    if other:
        raise QualityInputError(f"{other[0]}: not JSON Lines; name label and capture files .jsonl or .ndjson")
    return found


def assess(
    captured: str,
    labels_at: str,
    artifacts: Artifacts,
    problem: str | None = None,
    output: str | None = None,
    baseline_path: Path | None = None,
    s3: Any = None,
) -> Evaluation:
    """Read the labels, join the captured rows with them, and evaluate; QualityInputError if something cannot be
    read or the problem cannot be settled."""
    if s3 is None and "s3://" in (captured[:5], labels_at[:5]):
        from handler import aws  # lazily: local files need no boto3

        s3 = aws.client("s3")
    baseline = load_baseline(artifacts, baseline_path)
    try:
        labels = Labels()
        for source in _lines(labels_at, s3):
            with source.stream() as reader:
                labels.read(reader, source.name)
        joined = Joined()
        for source in _lines(captured, s3):
            with source.stream() as reader:
                joined.read(reader, source.name, labels)
        recorded = {"problem": baseline.problem, "output": baseline.output} if baseline is not None else None
        settled = resolve(
            artifacts.signature, artifacts.manifest.raw, [lb.value for lb in joined.labels], problem, output, recorded
        )
    except (DriftInputError, ProblemError) as exc:
        raise QualityInputError(str(exc)) from None
    except UnicodeDecodeError:
        raise QualityInputError("a label or capture file is not UTF-8 text") from None
    return evaluate(joined, labels, settled, baseline, slicer_of(artifacts))


def run(
    captured: str,
    labels_at: str,
    artifacts: Artifacts,
    problem: str | None = None,
    output: str | None = None,
    baseline_path: Path | None = None,
    html: Path | None = None,
    out: TextIO | None = None,
    history: Path | None = None,
) -> int:
    """Print the JSON report (and write the page, with `history`'s reports over time); 1 if a metric degraded, 2 if
    something cannot be read."""
    try:
        if history is not None and html is None:
            raise QualityInputError(f"--history {history} draws the page's metrics over time: give --html PAGE too")
        earlier = None
        if history is not None:
            from handler.monitoring.quality.history import read_history

            earlier = read_history(history, artifacts.manifest.name)  # before the join: a bad folder fails fast
        evaluation = assess(captured, labels_at, artifacts, problem, output, baseline_path)
    except QualityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = artifacts.manifest
    report = {"model": m.name, "version": m.version, "captured": captured, "labels": labels_at}
    report.update(evaluation.to_dict())
    if not evaluation.rows_joined:
        report["warning"] = "no label joined a captured row: are its ids the answers' inference ids? was capture on?"
    print(json.dumps(report, indent=1), file=out or sys.stdout)
    if html is not None:
        from handler.monitoring.quality.html import render

        try:
            html.write_text(render(report, earlier))
        except OSError as exc:
            print(f"error: {html}: cannot be written ({exc.strerror or exc})", file=sys.stderr)
            return 2
    return 1 if evaluation.degraded else 0

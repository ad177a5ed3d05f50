"""`python -m handler drift FILE_OR_S3_URI [--html report.html]`: served requests against the training baseline.

Reads every row (see `readers`), counts it into the bins of the model's `baseline.json` (the
same code as the drift watch in the server), and prints a JSON report:

    {"model": "churn", "rows": 1000, "threshold": "calibrated", "distance": "psi",
     "features": {"monthly_charges": {"score": 8.28, "drifted": true, "out_of_range": 1.0, ...}, ...},
     "drifted": ["monthly_charges"], ...}

Exit status: 0 nothing drifted, 1 something drifted, 2 the input or the model cannot be read.
The model is not loaded: only its manifest, its baseline and the coercion rules are needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from handler.core.artifacts import BASELINE_FILE, Artifacts
from handler.core.coerce import CoercePolicy, Coercer
from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Tally
from handler.monitoring.report.classes import ClassTally, shares, watched
from handler.monitoring.report.outcome import EXAMPLES, Outcome
from handler.monitoring.report.readers import DriftInputError, read, sources
from handler.monitoring.vocabulary import over_real_tokens


def load_baseline(artifacts: Artifacts) -> Baseline:
    if BASELINE_FILE not in artifacts.manifest.files:
        raise DriftInputError(
            f"{artifacts.model_dir} has no {BASELINE_FILE}: re-export the model with export_model(..., "
            f"training_data=...) to compare served data with training"
        )
    try:
        return Baseline.load(artifacts.model_dir / BASELINE_FILE)
    except (ValueError, KeyError, TypeError) as exc:
        raise DriftInputError(f"{artifacts.model_dir / BASELINE_FILE} cannot be read: {exc}") from None


def compare(target: str, artifacts: Artifacts, threshold: float | None, s3: Any = None) -> Outcome:
    """Every row of the file (or of every object under the S3 prefix) against the baseline."""
    baseline = load_baseline(artifacts)
    policy = CoercePolicy(numeric_strings="accept", unknown_features="ignore", max_batch_size=1 << 30)
    coercer = Coercer(artifacts.signature, policy)
    if s3 is None and target.startswith("s3://"):
        from handler import aws  # lazily: a local file needs no boto3

        s3 = aws.client("s3")
    files = sources(target, s3)
    tallies: dict[str, Tally] = {}
    by_class = {
        n: (names, named, ClassTally.empty(len(names)))
        for n, (names, named) in watched(artifacts.manifest.raw, baseline.outputs).items()
    }
    rows, rejected = 0, 0
    examples: list[str] = []
    for source in files:
        for batch in read(source, coercer):
            rejected += len(batch.rejected)
            examples += [f"{source.name}: {r}" for r in batch.rejected[: EXAMPLES - len(examples)]]
            if not batch.rows:
                continue
            rows += batch.rows
            _add(tallies, baseline.tally(batch.columns, batch.outputs))
            for name, (_, _, tally) in by_class.items():
                if batch.outputs is not None and name in batch.outputs:
                    tally.add(batch.outputs[name])
    if not rows:
        why = f"; e.g. {examples[0]}" if examples else ""
        raise DriftInputError(f"{target}: no row could be read ({rejected} rejected{why})")
    report = over_real_tokens(baseline.compare(tallies, rows, threshold), baseline.features)
    if any(f"outputs/{n}" not in tallies for n in baseline.outputs):
        report = replace(report, outputs={})  # outputs only when every row came with them (capture records)
    classes = {}
    for name, (names, named, tally) in by_class.items():
        found = shares(tally, names, baseline.outputs[name], named) if name in report.outputs else None
        if found is not None:
            classes[name] = found
    m = artifacts.manifest
    return Outcome(report, baseline, m.name, m.version, target, [f.name for f in files], rejected, examples, classes)


def _add(total: dict[str, Tally], more: Mapping[str, Tally]) -> None:
    for key, tally in more.items():
        if key in total:
            total[key].add(tally)
        else:
            total[key] = tally


def run(
    target: str, artifacts: Artifacts, threshold: float | None, html: Path | None = None, out: TextIO | None = None
) -> int:
    """Print the JSON report (and write the page); 1 if anything drifted, 2 if something cannot be read."""
    stream = out or sys.stdout
    try:
        outcome = compare(target, artifacts, threshold)
    except DriftInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(outcome.to_dict(), indent=1), file=stream)
    if html is not None:
        from handler.monitoring.report.html import render

        try:
            html.write_text(render(outcome))
        except OSError as exc:
            print(f"error: {html}: cannot be written ({exc.strerror or exc})", file=sys.stderr)
            return 2
    return 1 if outcome.drifted() else 0

"""Captured rows joined with their labels by inference id.

Data capture writes one JSON line per served row (`monitoring/capture.py`): its `inference_id`, the row
(`instance`) and the answers (`outputs`). Only the rows that have a label are kept, so memory follows the
labels, not the traffic. What does not join is counted, never an error: labels whose id no captured row has
(the row was not sampled, or its capture expired), captured rows nobody labelled, and a row captured twice
(an S3 job retried serves its rows again, under the same ids): the first is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from handler.monitoring.quality.labels import Label, Labels, Problems


@dataclass
class Joined:
    """The captured rows that have a label, in the order read, and what did not join."""

    ids: list[str] = field(default_factory=list)
    instances: list[Any] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    captured_rows: int = 0
    unlabelled_rows: int = 0
    duplicate_rows: int = 0
    malformed: Problems = field(default_factory=Problems)  # capture lines that are no capture record
    _seen: set[str] = field(default_factory=set, repr=False)

    def read(self, lines: Iterable[bytes | str], source: str, labels: Labels) -> None:
        """Join one capture file's lines with `labels`."""
        by_id = labels.by_id
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                self.malformed.add(f"{source} line {number}: not JSON")
                continue
            if not isinstance(record, dict) or "instance" not in record or not isinstance(record.get("outputs"), dict):
                self.malformed.add(f"{source} line {number}: not a data capture record (instance, outputs)")
                continue
            self.captured_rows += 1
            inference_id = record.get("inference_id")
            label = by_id.get(inference_id) if isinstance(inference_id, str) else None
            if label is None or not isinstance(inference_id, str):  # no label, or captured before rows had ids
                self.unlabelled_rows += 1
                continue
            if inference_id in self._seen:
                self.duplicate_rows += 1
                continue
            self._seen.add(inference_id)
            self.ids.append(inference_id)
            self.instances.append(record["instance"])
            self.outputs.append(record["outputs"])
            self.labels.append(label)

    def unmatched(self, labels: Labels) -> int:
        """Labels whose id no captured row has."""
        return len(labels.by_id) - len(self._seen)

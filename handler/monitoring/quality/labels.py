"""Ground-truth labels, one JSON object a line, in either of two forms, read as they are:

    {"inference_id": "order-8/0", "label": 1}
    {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "order-8/0"},
     "eventVersion": "0"}

The second is SageMaker Model Monitor's ground-truth record (`encoding` CSV, JSON or BASE64, whose text is
read as CSV). A label is kept as the record gives it (a number, true/false or a string): what it means depends
on the problem type (`problem.py`). A line that is neither form is reported with its line number, never an
error; a second label for one id replaces the first (a correction) and is counted.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Lines of a report's examples of a kind: enough to see the pattern, not a copy of the file.
EXAMPLES = 5


@dataclass(frozen=True)
class Label:
    """One label as read, and where it was read (for a report of one that does not fit the problem)."""

    value: Any
    where: str


@dataclass
class Problems:
    """Lines or records that could not be used, counted, with the first few named."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, why: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(why)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "examples": self.examples}


@dataclass
class Labels:
    """Every label read, by inference id."""

    by_id: dict[str, Label] = field(default_factory=dict)
    malformed: Problems = field(default_factory=Problems)
    replaced: int = 0  # labels for an id already labelled: the later one is kept

    def read(self, lines: Iterable[bytes | str], source: str) -> None:
        """Add the labels of one file's lines (`source` names it in the reasons)."""
        for number, raw in enumerate(lines, start=1):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if not text.strip():
                continue
            where = f"{source} line {number}"
            try:
                inference_id, value = parse(text)
            except ValueError as exc:
                self.malformed.add(f"{where}: {exc}")
                continue
            if inference_id in self.by_id:
                self.replaced += 1
            self.by_id[inference_id] = Label(value, where)


def parse(line: str) -> tuple[str, Any]:
    """A label line -> (inference id, label); ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if "groundTruthData" in record or "eventMetadata" in record:
        return _sagemaker(record)
    inference_id, label = record.get("inference_id"), record.get("label")
    if not isinstance(inference_id, str) or not inference_id:
        raise ValueError('no "inference_id" string: a label line is {"inference_id": ..., "label": ...}')
    if label is None or isinstance(label, (dict, list)):
        raise ValueError('"label" must be a number, true/false or a string')
    return inference_id, label


def _sagemaker(record: dict[str, Any]) -> tuple[str, Any]:
    """SageMaker's ground-truth record: its eventId and its data in its encoding."""
    meta, truth = record.get("eventMetadata"), record.get("groundTruthData")
    event_id = meta.get("eventId") if isinstance(meta, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("no eventMetadata.eventId string")
    if not isinstance(truth, dict) or not isinstance(truth.get("data"), str):
        raise ValueError("no groundTruthData.data string")
    data, encoding = truth["data"], str(truth.get("encoding", "CSV")).upper()
    if encoding == "JSON":
        try:
            value = json.loads(data)
        except ValueError:
            raise ValueError("groundTruthData.data is not JSON, as its encoding says") from None
        if value is None or isinstance(value, (dict, list)):
            raise ValueError("groundTruthData.data must hold one number, true/false or string")
        return event_id, value
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("groundTruthData.data is not base64 of UTF-8 text, as its encoding says") from None
    elif encoding != "CSV":
        raise ValueError(f"groundTruthData.encoding {encoding!r} is not CSV, JSON or BASE64")
    fields = next(csv.reader(io.StringIO(data)), [])
    if len(fields) != 1:
        raise ValueError(f"groundTruthData.data holds {len(fields)} CSV values; a label is one")
    return event_id, fields[0]

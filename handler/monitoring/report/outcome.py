"""What a drift report says and what was read to make it: the JSON report and the page both render this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import BINS, DriftReport
from handler.monitoring.report.classes import ClassShare

# Rows under which PSI's noise floor, about (bins - 1) / rows, nears the threshold: said in the report.
MIN_ROWS = 1000
EXAMPLES = 5


@dataclass
class Outcome:
    """A report and what was read to make it."""

    report: DriftReport
    baseline: Baseline
    model: str
    version: str
    source: str
    files: list[str] = field(default_factory=list)
    rejected_rows: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    classes: dict[str, list[ClassShare]] = field(default_factory=dict)  # a classifier's outputs, by class

    def drifted(self) -> bool:
        """Whether a feature or a prediction drifted: the exit status and the page's headline both say this."""
        return bool(self.report.drifted_names() or self.report.drifted_names("outputs"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "files": len(self.files),
            "rejected_rows": self.rejected_rows,
        }
        if self.rejected_examples:
            out["rejected_examples"] = self.rejected_examples
        body = self.report.to_dict()
        if not self.report.outputs:
            body.pop("outputs")
            body.pop("predictions_drifted")
        for name, found in self.classes.items():
            # A softmax's mean over every score is 1/k whatever was served: the classes say what moved.
            output = body["outputs"][name]
            output.pop("mean", None)
            output["classes"] = {c.name: c.to_dict() for c in found}
        out.update(body)
        if self.report.rows < MIN_ROWS:
            out["warning"] = (
                f"only {self.report.rows} rows: with {BINS} bins PSI is about {(BINS - 1) / self.report.rows:.3f} "
                f"from sampling noise alone; judge with {MIN_ROWS} rows or more"
            )
        return out

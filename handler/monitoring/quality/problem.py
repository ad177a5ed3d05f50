"""The problem a model solves, which output its labels judge, and what a label and an answer mean for it.

The type is, first to last: `--problem`; the quality baseline's; the manifest's (`problem`, written at
export); `class_names` (two: binary, more: multiclass) with the output's shape; an output of several scores
per row (multiclass; two scores are binary); else, for one score per row, the labels: all of them 0/1 (or
true/false) is binary, anything else regression. The report says which of these decided.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.core.signature import Signature, TensorSpec
from handler.monitoring.quality.metrics import PROBLEMS, ProblemType

_TRUE, _FALSE = frozenset({"1", "true", "1.0"}), frozenset({"0", "false", "0.0"})


class ProblemError(Exception):
    """The problem or the output cannot be settled: the message says what to pass."""


@dataclass(frozen=True)
class Problem:
    """What the labels are compared with: one output's answers, read as the problem type reads them."""

    type: ProblemType
    output: str
    width: int  # the output's values a row: binary 1 (a sigmoid) or 2 (a softmax), multiclass k, regression 1
    class_names: tuple[str, ...] = ()
    source: str = ""  # what decided the type, for the report

    def label(self, value: Any) -> float:
        """A label as the metrics take it (0/1, a class index, a value); ValueError saying why it cannot be."""
        if self.type == "regression":
            number = _number(value)
            if number is None:
                raise ValueError(f"label {_show(value)} is not a number (a regression's label is its true value)")
            return number
        if self.class_names and isinstance(value, str) and value in self.class_names:
            return float(self.class_names.index(value))
        if self.type == "binary":
            flag = _flag(value)
            if flag is None:
                names = f" or {' / '.join(self.class_names)}" if self.class_names else ""
                raise ValueError(f"label {_show(value)} is not 0/1 or true/false{names}")
            return flag
        index = _number(value)
        if index is None or not index.is_integer() or not 0 <= index < self.width:
            raise ValueError(f"label {_show(value)} is not a class index 0..{self.width - 1} or a class name")
        return index

    def answers(self, outputs: Sequence[Any]) -> np.ndarray:
        """The chosen output's answers (as captured) -> binary: the positive score; multiclass: [n, k]; regression:
        the value. ValueError if an answer does not have the output's shape."""
        arr = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        if arr.shape[1] != self.width:
            raise ValueError(f"output '{self.output}' has {arr.shape[1]} values a row, not {self.width}")
        if self.type == "multiclass":
            return arr
        return arr[:, -1]  # one score, or the second of two: the positive class's

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "output": self.output, "from": self.source}
        if self.class_names:
            out["class_names"] = list(self.class_names)
        return out


def resolve(
    signature: Signature,
    manifest: Mapping[str, Any],
    labels: Iterable[Any],
    chosen: str | None = None,
    output: str | None = None,
    recorded: Mapping[str, Any] | None = None,
) -> Problem:
    """The problem of this model's labels: `chosen` (--problem), else `recorded` (a quality baseline's), else the
    manifest's, else what the outputs and the labels say (the module's docstring)."""
    found = manifest.get("problem")
    exported: Mapping[str, Any] = found if isinstance(found, dict) else {}
    output = output or (recorded or {}).get("output") or exported.get("output")
    spec = _output(signature, output)
    names = tuple(manifest.get("class_names") or ())
    size = spec.size
    if size is None:
        raise ProblemError(f"output '{spec.name}' has a free dimension: the labels cannot be matched to its values")
    if chosen is not None:
        kind, source = chosen, "--problem"
    elif recorded is not None and recorded.get("problem") in PROBLEMS:
        kind, source = recorded["problem"], "the quality baseline"
    elif exported.get("type") in PROBLEMS:
        kind, source = exported["type"], "the manifest"
    elif names:
        kind, source = ("binary" if len(names) == 2 else "multiclass"), "class_names"
    elif size > 1:
        kind, source = ("binary" if size == 2 else "multiclass"), f"output '{spec.name}' ({size} scores a row)"
    else:
        binary = all(_flag(v) is not None for v in labels)
        kind, source = ("binary" if binary else "regression"), "the labels (all 0/1)" if binary else "the labels"
    if kind not in PROBLEMS:  # only --problem can name another: argparse's choices refuse it first
        raise ProblemError(f"problem {kind!r} is not one of {', '.join(PROBLEMS)}")
    return Problem(kind, spec.name, _width(kind, spec), names, source)


def _output(signature: Signature, name: str | None) -> TensorSpec:
    outputs = {o.name: o for o in signature.outputs}
    if name is not None:
        if name not in outputs:
            raise ProblemError(f"the model has no output '{name}': it has {', '.join(outputs)}")
        return outputs[name]
    if len(outputs) != 1:
        raise ProblemError(f"the model has outputs {', '.join(outputs)}: name the one the labels judge (--output)")
    return next(iter(outputs.values()))


def _width(kind: str, spec: TensorSpec) -> int:
    """The output's values a row, checked against the problem type."""
    size = spec.size or 0
    wanted = {"regression": "one value", "binary": "1 or 2 scores", "multiclass": "a score a class"}
    if (kind == "regression" and size != 1) or (kind == "binary" and size > 2) or (kind == "multiclass" and size < 2):
        raise ProblemError(f"output '{spec.name}' gives {size} value(s) a row; a {kind} model's gives {wanted[kind]}")
    return size


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> float | None:
    """0/1, true/false (or their text): 0.0 or 1.0; anything else None."""
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

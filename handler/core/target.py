"""The target's scaling, recorded at training: the model learns scaled targets, clients get training's units.

A regression trained on a standardized target (house prices in dollars, scaled to mean 0 and
standard deviation 1) answers in the scaled units. `TargetScaling` is fitted on the training
targets next to the `Preprocessor` (it travels in `preprocessing.json`), scales the targets for
`model.fit`, and un-scales the model's outputs: in the training script for `expected=`, and in the
server after the model, so every trigger and both runtimes answer in dollars.

    target = TargetScaling.fit(prices, "standardize")          # or {output name: targets}
    pre = Preprocessor.fit(columns, numeric=..., categorical=..., target=target)
    model.fit(pre.transform(columns), target.scale(prices))
    expected = {case: target.unscale(model.predict(pre.transform(cols)))}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from handler.core.signature import TensorSpec

TargetOp = Literal["standardize", "minmax"]
_OPS = ("standardize", "minmax")


@dataclass(frozen=True)
class OutputScaling:
    """One output's fitted scaling: one statistic for the whole output, or one per column of it."""

    output: str | None  # None: the model's one output, whatever the model calls it
    op: TargetOp
    mean: tuple[float, ...]
    std: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"target scaling op {self.op!r} is not one of {', '.join(_OPS)}")
        sizes = {len(self.mean), len(self.std), len(self.min), len(self.max)}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"target scaling of {self.label} needs as many means, stds, mins and maxes, at least one")

    @property
    def label(self) -> str:
        return "the model's output" if self.output is None else f"output '{self.output}'"

    @property
    def columns(self) -> int:
        return len(self.mean)

    @property
    def shift_and_divisor(self) -> tuple[np.ndarray, np.ndarray]:
        """The op as (y - shift) / divisor, in float64: [1] broadcasts over any output, [k] over its columns."""
        if self.op == "standardize":
            shift, divisor = self.mean, self.std
        else:
            shift, divisor = self.min, tuple(hi - lo for lo, hi in zip(self.min, self.max, strict=True))
        return np.array(shift, dtype=np.float64), np.array(divisor, dtype=np.float64)

    @classmethod
    def fit(cls, output: str | None, values: Any, op: TargetOp) -> OutputScaling:
        """Statistics of training targets [n] or [n, 1] (one for all), or [n, k] (one per column)."""
        y = np.asarray(values, dtype=np.float64)
        where = "the target" if output is None else f"the target of '{output}'"
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim not in (1, 2) or not len(y):
            raise ValueError(f"{where} must have shape [n] or [n, k] with n > 0, got {list(y.shape)}")
        if not np.isfinite(y).all():
            raise ValueError(f"{where} holds NaN or infinity: its statistics would be too")
        y2 = y.reshape(len(y), -1)
        std = y2.std(axis=0)
        lo, hi = y2.min(axis=0), y2.max(axis=0)
        return cls(
            output=output,
            op=op,
            mean=tuple(map(float, y2.mean(axis=0))),
            std=tuple(float(s) if s > 0 else 1.0 for s in std),  # a constant target: scaling by 1 keeps it finite
            min=tuple(map(float, lo)),
            max=tuple(float(h) if h > m else float(m) + 1.0 for m, h in zip(lo, hi, strict=True)),
        )

    def scale(self, values: Any) -> np.ndarray:
        shift, divisor = self.shift_and_divisor
        return (np.asarray(values, dtype=np.float64) - shift) / divisor

    def unscale(self, values: Any) -> np.ndarray:
        """Model units -> training's units, in float64 (what a training script compares with)."""
        shift, divisor = self.shift_and_divisor
        return np.asarray(values, dtype=np.float64) * divisor + shift

    def problem(self, spec: TensorSpec) -> str | None:
        """Why this scaling cannot apply to the output `spec`, or None."""
        if spec.kind != "float":
            return f"{self.label} is {spec.describe()}: only a float output can be un-scaled"
        if self.columns != 1 and spec.shape != (self.columns,):
            return (
                f"the target scaling has {self.columns} statistics (one per column) but {self.label} is "
                f"{spec.describe()}: fit it on targets of shape [n, {spec.size}] or [n]"
            )
        return None


@dataclass(frozen=True)
class TargetScaling:
    """The fitted scaling of each scaled output (outputs not listed are answered as the model gives them)."""

    outputs: tuple[OutputScaling, ...]

    @classmethod
    def fit(cls, targets: Any, op: TargetOp | Mapping[str, TargetOp] = "standardize") -> TargetScaling:
        """Fit on the training targets: one array (the model's one output), or {output name: array}.

        `op` is "standardize" ((y - mean) / std) or "minmax" ((y - min) / (max - min)), or one per output name.
        """
        if isinstance(targets, Mapping):
            ops = op if isinstance(op, Mapping) else dict.fromkeys(targets, op)
            if set(ops) != set(targets):
                raise ValueError(f"op names outputs {sorted(ops)}, targets {sorted(targets)}: one op per output")
            return cls(tuple(OutputScaling.fit(str(name), y, ops[name]) for name, y in targets.items()))
        if isinstance(op, Mapping):
            raise ValueError("op by output name needs targets by output name")
        return cls((OutputScaling.fit(None, targets, op),))

    def _entry(self, name: str | None) -> OutputScaling | None:
        for entry in self.outputs:
            if entry.output == name:
                return entry
        return None

    def _by_name(self, values: Any, how: str) -> Any:
        """Apply `how` (scale or unscale) to an array, a dict of arrays by output name, or a list of them."""
        if isinstance(values, Mapping):
            only = self._entry(None) if len(values) == 1 else None  # one array fitted, one output given by name
            out = {}
            for name, v in values.items():
                entry = only or self._entry(str(name))
                out[name] = getattr(entry, how)(v) if entry is not None else v
            return out
        if isinstance(values, (list, tuple)) and self._entry(None) is None:
            # A list of outputs, as TF Serving names them: output_0, output_1, ...
            return [self._by_name({f"output_{i}": v}, how)[f"output_{i}"] for i, v in enumerate(values)]
        entry = self._entry(None) or (self.outputs[0] if len(self.outputs) == 1 else None)
        if entry is None:
            raise ValueError("these targets scale several outputs: give a dict of arrays by output name")
        return getattr(entry, how)(values)

    def scale(self, targets: Any) -> Any:
        """Training's targets -> what the model learns (float64): an array, or a dict/list by output."""
        return self._by_name(targets, "scale")

    def unscale(self, outputs: Any) -> Any:
        """The model's answer (`model.predict`) -> training's units (float64), in the same structure."""
        return self._by_name(outputs, "unscale")

    def problems(self, outputs: Sequence[TensorSpec]) -> list[str]:
        """Why this scaling does not fit the model's outputs (checked at export): [] when it does."""
        names = [o.name for o in outputs]
        found: list[str] = []
        for entry in self.outputs:
            if entry.output is None and len(outputs) != 1:
                found.append(
                    f"the target scaling was fitted on one array but the model has outputs {names}: "
                    f"fit it on {{output name: targets}}"
                )
                continue
            spec = outputs[0] if entry.output is None else next((o for o in outputs if o.name == entry.output), None)
            if spec is None:
                found.append(f"the target scaling names output '{entry.output}', but the model's outputs are {names}")
                continue
            why = entry.problem(spec)
            if why is not None:
                found.append(why)
        return found

    def apply(self, outputs: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Served outputs by name -> in training's units, each computed in float64 and rounded once to its dtype."""
        out = dict(outputs)
        for entry in self.outputs:
            name = names[0] if entry.output is None else entry.output
            model_units = out[name]
            shift, divisor = entry.shift_and_divisor
            with np.errstate(over="ignore"):  # beyond the dtype is infinity: the NaN check after refuses the row
                out[name] = (model_units.astype(np.float64) * divisor + shift).astype(model_units.dtype)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": [
                {
                    "output": e.output,
                    "op": e.op,
                    "mean": list(e.mean),
                    "std": list(e.std),
                    "min": list(e.min),
                    "max": list(e.max),
                }
                for e in self.outputs
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetScaling:
        entries = []
        for d in data["outputs"]:
            stats = {k: tuple(float(v) for v in d[k]) for k in ("mean", "std", "min", "max")}
            entries.append(OutputScaling(output=d["output"], op=d["op"], **stats))
        if not entries or len({e.output for e in entries}) != len(entries):
            raise ValueError("the target scaling must list each output once, at least one")
        return cls(tuple(entries))

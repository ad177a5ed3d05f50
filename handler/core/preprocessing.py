"""Fit, save and apply the preprocessing: one code path for training and serving (numpy only).

The fitted statistics and vocabularies live in `preprocessing.json`. Training fits them once
and calls `transform`; the server loads the same file and calls the same `transform`, so the
model sees the same numbers in both places. A scaled regression target travels with them
(`TargetScaling`, in `target.py`): the server un-scales the model's outputs with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from handler.core.signature import TensorSpec
from handler.core.target import TargetScaling as TargetScaling  # re-exported: fitted beside the Preprocessor
from handler.core.values import Coded

# 2 only with a target scaling: a server that predates it refuses the file instead of serving scaled answers.
FORMAT_VERSION = 1
FORMAT_VERSION_TARGET = 2

NumericOp = Literal["standardize", "minmax", "passthrough"]
OovPolicy = Literal["error", "zeros"]

# A scaled value further than this from the training data (in standard deviations, or in training ranges
# for minmax) is not a measurement: float32 arithmetic on it gives one answer on one runtime and NaN on
# another. The server refuses it naming the feature; the golden "values_outside_training_range" is ~4.
PLAUSIBLE_SCALE = 1e4

# Up to this many rows, `transform` runs in plain Python (the one-example hot path).
_SMALL_BATCH = 4

# Raw columns as coerce produces them: float64 for numeric features, str objects for categories.
Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input and its fitted scaling."""

    name: str
    op: NumericOp = "standardize"
    mean: float = 0.0
    std: float = 1.0
    min: float = 0.0
    max: float = 1.0
    kind: Literal["numeric"] = "numeric"

    @property
    def width(self) -> int:
        return 1

    @property
    def fill_value(self) -> float:
        """The training-set value that stands in for a non-finite input under 'impute'."""
        return self.mean if self.op == "standardize" else (self.min + self.max) / 2

    @property
    def shift_and_divisor(self) -> tuple[float, float]:
        """The op as (x - shift) / divisor: the one place the fitted statistics become arithmetic."""
        if self.op == "standardize":
            return self.mean, self.std
        if self.op == "minmax":
            return self.min, self.max - self.min
        return 0.0, 1.0


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input one-hot encoded over a vocabulary fitted on the training data.

    `oov`: what an unseen category becomes. "zeros" encodes it as all zeros (the model saw no
    such category, so no column lights up); "error" rejects the request naming the feature.
    """

    name: str
    vocabulary: tuple[str, ...] = ()
    oov: OovPolicy = "zeros"
    kind: Literal["categorical"] = "categorical"
    _index: dict[str, int] = field(default_factory=lambda: _Vocabulary(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
        self._index.update({v: i for i, v in enumerate(self.vocabulary)})

    @property
    def width(self) -> int:
        return len(self.vocabulary)

    def index_of(self, value: str) -> int:
        """Position in the vocabulary, or -1 when unseen."""
        return self._index.get(value, -1)

    def indices(self, values: np.ndarray) -> np.ndarray:
        """Vocabulary position of each value, -1 where unseen."""
        cells = values.tolist() if isinstance(values, np.ndarray) else values
        # map() with the bound __getitem__ runs the lookups in C, twice as fast as dict.get with a default;
        # `_Vocabulary.__missing__` answers -1 for an unseen value.
        return np.fromiter(map(self._index.__getitem__, cells), dtype=np.intp, count=len(cells))


class _Vocabulary(dict[str, int]):
    """Value -> position in the vocabulary; -1 for a value not in it."""

    def __missing__(self, key: object) -> int:
        return -1


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class _Plan:
    """Where each feature lands in the model input, precomputed once per preprocessor."""

    numeric: list[str]
    numeric_at: np.ndarray
    shift: np.ndarray
    divisor: np.ndarray
    categorical: list[tuple[CategoricalFeature, int]]
    scaled_at: np.ndarray  # columns of standardize/minmax features: checked against PLAUSIBLE_SCALE
    numeric_ops: list[tuple[str, int, float, float]]  # (feature, column, shift, divisor) for the small path
    width: int  # columns of the model input
    scaled_columns: list[int]  # scaled_at, for the small path


@dataclass(frozen=True)
class Preprocessor:
    """The ordered raw feature spec and its fitted transform into the model's input."""

    features: tuple[Feature, ...]
    dtype: str = "float32"
    # The target's scaling: the model's outputs are un-scaled with it before the answer.
    target: TargetScaling | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def output_width(self) -> int:
        return sum(f.width for f in self.features)

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def transform(self, columns: Columns, coded: Mapping[str, Coded] | None = None) -> np.ndarray:
        """Raw columns -> model input of shape [n, output_width] in the training dtype.

        Numeric features are scaled a column at a time in float64 and categorical ones set their one-hot
        column in place, in the model's dtype; a few rows go through `_transform_small` instead. `coded`
        may give a categorical column as (codes, levels) too: the same values, looked up a level at a time.
        """
        plan = self._plan
        n = len(columns[self.features[0].name])
        if n <= _SMALL_BATCH:
            return self._transform_small(columns, n)
        # Built in the model's dtype: each value is computed in float64 and rounded once on assignment, as
        # astype rounds it, without a float64 copy of the whole input.
        out = np.zeros((n, plan.width), dtype=self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # a value the dtype cannot hold becomes inf: see `overflows`
            for name, at, shift, divisor in plan.numeric_ops:
                out[:, at] = (columns[name] - shift) / divisor
        flat = out.reshape(-1)
        starts = np.arange(0, n * plan.width, plan.width, dtype=np.intp)
        for f, offset in plan.categorical:
            codes_levels = coded.get(f.name) if coded else None
            if codes_levels is not None:
                codes, levels = codes_levels
                idx = f.indices(levels)[codes]
            else:
                idx = f.indices(columns[f.name])
            known = idx >= 0
            if known.all():
                flat[starts + offset + idx] = 1
            else:
                flat[starts[known] + offset + idx[known]] = 1
        return out

    def _transform_small(self, columns: Columns, n: int) -> np.ndarray:
        """`transform` for a few rows in plain Python: numpy's fixed cost per call dominated one example.

        The same IEEE double arithmetic, (x - shift) / divisor, so the same numbers as the batch path.
        """
        plan = self._plan
        if n == 1:  # one example: each value read as the Python number (or string) tolist() would give
            row = [0.0] * plan.width
            for name, at, shift, divisor in plan.numeric_ops:
                row[at] = (columns[name].item() - shift) / divisor
            for f, offset in plan.categorical:
                i = f._index.get(columns[f.name].item(), -1)
                if i >= 0:
                    row[offset + i] = 1.0
            rows = [row]
        else:
            rows = [[0.0] * plan.width for _ in range(n)]
            for name, at, shift, divisor in plan.numeric_ops:
                for row, v in zip(rows, columns[name].tolist(), strict=True):
                    row[at] = (v - shift) / divisor
            for f, offset in plan.categorical:
                get = f._index.get
                for row, v in zip(rows, columns[f.name].tolist(), strict=True):
                    i = get(v, -1)
                    if i >= 0:
                        row[offset + i] = 1.0
        with np.errstate(over="ignore"):  # a value float32 cannot hold becomes inf: `overflows` names it
            if self.dtype in ("float32", "float64"):  # Python floats rounded once, as astype rounds float64
                return np.array(rows, dtype=self.dtype)
            return np.array(rows, dtype=np.float64).astype(self.dtype)

    def overflows(self, x: np.ndarray) -> dict[int, list[str]]:
        """Rows of a transformed batch holding a value the model's dtype cannot: row -> feature names."""
        bad = ~np.isfinite(x)
        if not bad.any():
            return {}
        owner = [f.name for f in self.features for _ in range(f.width)]
        out: dict[int, list[str]] = {}
        for row, col in zip(*np.nonzero(bad), strict=True):
            names = out.setdefault(int(row), [])
            if owner[col] not in names:
                names.append(owner[col])
        return out

    def in_bounds(self, x: np.ndarray) -> bool:
        """Every value of a transformed batch finite and every scaled one within PLAUSIBLE_SCALE."""
        if len(x) <= _SMALL_BATCH:  # a few rows: the exact values (tolist) compared in Python
            scaled = self._plan.scaled_columns
            for row in x.tolist():
                for v in row:
                    if not -math.inf < v < math.inf:  # NaN fails the comparison too
                        return False
                for j in scaled:
                    if abs(row[j]) > PLAUSIBLE_SCALE:
                        return False
            return True
        at = self._plan.scaled_at
        with np.errstate(invalid="ignore"):
            return bool(np.isfinite(x).all() and (not at.size or np.abs(x[:, at]).max() <= PLAUSIBLE_SCALE))

    def implausible(self, x: np.ndarray) -> dict[int, list[str]]:
        """Rows of a transformed batch with a scaled feature beyond PLAUSIBLE_SCALE: row -> feature names."""
        plan = self._plan
        scaled = [
            (name, int(at))
            for name, at in zip(plan.numeric, plan.numeric_at.tolist(), strict=True)
            if self.feature(name).op != "passthrough"  # type: ignore[union-attr]
        ]
        if not scaled:
            return {}
        cols = np.array([at for _, at in scaled])
        with np.errstate(invalid="ignore"):
            far = np.abs(x[:, cols]) > PLAUSIBLE_SCALE
        out: dict[int, list[str]] = {}
        for row, j in zip(*np.nonzero(far), strict=True):
            out.setdefault(int(row), []).append(scaled[j][0])
        return out

    def feature_specs(self) -> tuple[TensorSpec, ...]:
        """What a client sends: numbers as float64 scalars, categories as strings (a strict one with its vocabulary)."""
        specs = []
        for f in self.features:
            if isinstance(f, NumericFeature):
                specs.append(TensorSpec(f.name, "float64", (), fill_value=f.fill_value))
            else:
                strict = frozenset(f.vocabulary) if f.oov == "error" else None
                specs.append(TensorSpec(f.name, "string", (), vocabulary=strict))
        return tuple(specs)

    @cached_property
    def _plan(self) -> _Plan:
        numeric, at, shift, divisor, categorical, scaled = [], [], [], [], [], []
        offset = 0
        for f in self.features:
            if isinstance(f, NumericFeature):
                numeric.append(f.name)
                at.append(offset)
                if f.op != "passthrough":
                    scaled.append(offset)
                sh, div = f.shift_and_divisor
                shift.append(sh)
                divisor.append(div)
            else:
                categorical.append((f, offset))
            offset += f.width
        return _Plan(
            numeric,
            np.array(at, dtype=np.int64),
            np.array(shift),
            np.array(divisor),
            categorical,
            np.array(scaled, dtype=np.int64),
            list(zip(numeric, at, map(float, shift), map(float, divisor), strict=True)),
            offset,
            scaled,
        )

    def output_names(self) -> list[str]:
        """One name per model input column, e.g. 'contract_type=two_year'."""
        names: list[str] = []
        for f in self.features:
            if isinstance(f, CategoricalFeature):
                names.extend(f"{f.name}={v}" for v in f.vocabulary)
            else:
                names.append(f.name)
        return names

    # --- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        columns: Columns,
        numeric: Mapping[str, NumericOp],
        categorical: Mapping[str, OovPolicy],
        order: Sequence[str] | None = None,
        dtype: str = "float32",
        target: TargetScaling | None = None,
    ) -> Preprocessor:
        """Fit statistics and vocabularies on training columns.

        `numeric` maps feature -> op, `categorical` maps feature -> out-of-vocabulary policy;
        `order` is the raw column order (default: numeric then categorical, as given); `target`,
        the target's scaling (`TargetScaling.fit` on the training targets), makes answers un-scaled.
        """
        order = list(order) if order is not None else [*numeric, *categorical]
        features: list[Feature] = []
        for name in order:
            values = np.asarray(columns[name])
            if name in numeric:
                x = values.astype(np.float64)
                std = float(x.std())
                lo, hi = float(x.min()), float(x.max())
                features.append(
                    NumericFeature(
                        name=name,
                        op=numeric[name],
                        mean=float(x.mean()),
                        std=std if std > 0 else 1.0,
                        min=lo,
                        max=hi if hi > lo else lo + 1.0,
                    )
                )
            elif name in categorical:
                vocab = tuple(sorted({str(v) for v in values}))
                features.append(CategoricalFeature(name=name, vocabulary=vocab, oov=categorical[name]))
            else:
                raise ValueError(f"column '{name}' is in `order` but in neither numeric nor categorical")
        return cls(features=tuple(features), dtype=dtype, target=target)

    # --- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        feats = []
        for f in self.features:
            d = asdict(f)
            d.pop("_index", None)
            if isinstance(f, CategoricalFeature):
                d["vocabulary"] = list(f.vocabulary)
            feats.append(d)
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION if self.target is None else FORMAT_VERSION_TARGET,
            "features": feats,
            "model_input": {"dtype": self.dtype, "shape": [None, self.output_width]},
            "model_input_columns": self.output_names(),
        }
        if self.target is not None:
            out["target"] = self.target.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        if data.get("format_version") not in (FORMAT_VERSION, FORMAT_VERSION_TARGET):
            raise ValueError(
                f"preprocessing format_version {data.get('format_version')!r} is not "
                f"{FORMAT_VERSION} or {FORMAT_VERSION_TARGET}: re-export the model with this version of skewless"
            )
        features: list[Feature] = []
        for d in data["features"]:
            d = dict(d)
            kind = d.pop("kind")
            if kind == "numeric":
                features.append(NumericFeature(**d))
            elif kind == "categorical":
                features.append(CategoricalFeature(**d))
            else:
                raise ValueError(f"feature '{d.get('name')}' has unknown kind {kind!r}")
        target = TargetScaling.from_dict(data["target"]) if data.get("target") is not None else None
        pre = cls(features=tuple(features), dtype=data["model_input"]["dtype"], target=target)
        declared = data["model_input"]["shape"][1]
        if declared != pre.output_width:
            raise ValueError(
                f"preprocessing.json declares {declared} model inputs but its features encode to {pre.output_width}"
            )
        return pre

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        return cls.from_dict(json.loads(path.read_text()))

"""The model's signature: every input and output with its name, dtype and per-example shape.

One object describes what a client sends (`features`), what the model takes (`inputs`) and
what it answers (`outputs`). Coercion, preprocessing, the runtimes and the answer formats all
take it as an argument. It is written into the manifest at export and read back at serving
time; nothing here imports Keras or TensorFlow.

- Without a numpy `Preprocessor`, the features *are* the model's inputs (preprocessing, if
  any, lives in the graph).
- With one, the features are its raw scalar columns (numbers as float64, categories as
  strings) and the model takes its output, one float matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Structure = Literal["single", "list", "dict"]
SIGNATURE_NAME = "serving_default"  # TF Serving's name for the one signature a Keras model exports

# Keras dtype name -> (OIP datatype, TF Serving dtype). numpy's name is the Keras name, except "string".
DTYPES: dict[str, tuple[str, str]] = {
    "bool": ("BOOL", "DT_BOOL"),
    "uint8": ("UINT8", "DT_UINT8"),
    "uint16": ("UINT16", "DT_UINT16"),
    "uint32": ("UINT32", "DT_UINT32"),
    "uint64": ("UINT64", "DT_UINT64"),
    "int8": ("INT8", "DT_INT8"),
    "int16": ("INT16", "DT_INT16"),
    "int32": ("INT32", "DT_INT32"),
    "int64": ("INT64", "DT_INT64"),
    "float16": ("FP16", "DT_HALF"),
    "float32": ("FP32", "DT_FLOAT"),
    "float64": ("FP64", "DT_DOUBLE"),
    "string": ("BYTES", "DT_STRING"),
}
OIP_DTYPES = {oip: name for name, (oip, _) in DTYPES.items()}


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy dtype that holds values of a Keras dtype (strings are Python objects)."""
    return np.dtype(object) if dtype == "string" else np.dtype(dtype)


def describe(dtype: str, shape: Sequence[int | None]) -> str:
    """`uint8 [28, 28, 1]`, `int32 scalar`, `float32 [any, 3]`: a tensor's dtype and per-example shape in words."""
    dims = ", ".join("any" if d is None else str(d) for d in shape)
    return f"{dtype} [{dims}]" if len(shape) else f"{dtype} scalar"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: dtype (a Keras dtype name) and per-example shape (no batch axis; None = any)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] = ()
    # Integer ids must lie in [lo, hi): an Embedding's input_dim, a CategoryEncoding's num_tokens.
    index_range: tuple[int, int] | None = None
    # The only values taken, others refused: a strict categorical column, or a lookup layer without an OOV index
    # (strings, or int ids) that would fail inside the graph on any other value.
    vocabulary: frozenset[str] | frozenset[int] | None = field(default=None, compare=False)
    # What NON_FINITE=impute puts in place of NaN/Infinity: the training mean of a numeric column.
    fill_value: float | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor '{self.name}' has dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(self.shape))
        # Asked for on every value of every request: computed once.
        kind = "string" if self.dtype == "string" else "bool" if self.dtype == "bool" else None
        kind = kind or ("float" if self.dtype.startswith("float") else "int")
        object.__setattr__(self, "_kind", kind)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int | None:
        """Values per example, or None when a dimension is free."""
        size = 1
        for d in self.shape:
            if d is None:
                return None
            size *= d
        return size

    @property
    def example_bytes(self) -> int:
        """About what one example takes once coerced: a free dimension counted as 64 positions, a string as 64 bytes."""
        values = 1
        for d in self.shape:
            values *= 64 if d is None else d
        return values * (64 if self.kind == "string" else numpy_dtype(self.dtype).itemsize)

    @property
    def kind(self) -> Literal["bool", "int", "float", "string"]:
        kind: Literal["bool", "int", "float", "string"] = self._kind  # type: ignore[attr-defined]
        return kind

    @property
    def oip_datatype(self) -> str:
        return DTYPES[self.dtype][0]

    @property
    def tf_dtype(self) -> str:
        return DTYPES[self.dtype][1]

    def describe(self) -> str:
        """`uint8 [28, 28, 1]`: how error messages name what is expected."""
        return describe(self.dtype, self.shape)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.index_range is not None:
            out["index_range"] = list(self.index_range)
        if self.vocabulary is not None:
            out["vocabulary"] = sorted(self.vocabulary)  # one type per feature: str or int
        if self.fill_value is not None:
            out["fill_value"] = self.fill_value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        rng = d.get("index_range")
        vocab = d.get("vocabulary")
        return cls(
            name=str(d["name"]),
            dtype=str(d["dtype"]),
            shape=tuple(None if s is None else int(s) for s in d.get("shape", ())),
            index_range=(int(rng[0]), int(rng[1])) if rng is not None else None,
            vocabulary=frozenset(vocab) if vocab is not None else None,
            fill_value=float(d["fill_value"]) if d.get("fill_value") is not None else None,
        )


@dataclass(frozen=True)
class Signature:
    """What a client sends (`features`), what the model takes (`inputs`), what it answers (`outputs`)."""

    features: tuple[TensorSpec, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_structure: Structure = "single"
    output_structure: Structure = "single"

    def __post_init__(self) -> None:
        for side, specs in (("features", self.features), ("inputs", self.inputs), ("outputs", self.outputs)):
            names = [s.name for s in specs]
            if not names:
                raise ValueError(f"the signature has no {side}")
            if len(set(names)) != len(names):
                raise ValueError(f"the signature's {side} repeat a name: {names}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def scalar_features(self) -> bool:
        """Every feature is one value per example: rows may be ordered arrays, files may be CSV."""
        return all(f.rank == 0 for f in self.features)

    def feature(self, name: str) -> TensorSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "input_structure": self.input_structure,
            "output_structure": self.output_structure,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        def specs(key: str) -> tuple[TensorSpec, ...]:
            items: Sequence[Mapping[str, Any]] = d[key]
            return tuple(TensorSpec.from_dict(x) for x in items)

        return cls(
            features=specs("features"),
            inputs=specs("inputs"),
            outputs=specs("outputs"),
            input_structure=d.get("input_structure", "single"),
            output_structure=d.get("output_structure", "single"),
        )

"""Near-valid bodies for any reference model: golden examples with a few mutations whose effect is known.

Each mutation says, from the signature in the manifest and the rules the README documents (not from the
server's code), whether it breaks the example in a TF Serving v1 body and in an OIP v2 tensor:
- a number for a float input may be an int, a numeric string or a boolean in v1 (NUMERIC_STRINGS=accept);
  OIP v2's numeric datatypes take JSON numbers only;
- an int input takes integral numbers within its dtype and `index_range`, never a fraction;
- a string input takes any string (a strict vocabulary: only its categories), never a number or null;
- NaN, Infinity, a number float32 cannot hold, null, text for a number, an object: broken everywhere;
- a leaf wrapped in a list breaks v1 (a shape) but not v2 (OIP data may be nested; only its count counts);
- a scalar for an array breaks v1, except for an input of shape [1], which takes its one value bare;
- an axis one too short or too long breaks v1; OIP v2 data is flat, so it breaks v2 only when the tensor's
  value count no longer fits its shape (one example shorter and another longer fit: `count_breaks`);
- a missing input or an unknown key breaks v1 rows.

A number float32 cannot hold, sent for a float64 feature of a model with a numpy preprocessor (churn), is
judged after coercion, against the model's own dtype: it is named only when nothing else in the request is
wrong (`late`). Every other break is judged while coercing (`early`), all of them at once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.support import zoo
from tests.support.golden_requests import rows_of

OIP = {"float64": "FP64", "float32": "FP32", "string": "BYTES", "uint8": "UINT8", "int32": "INT32"}
LIMITS = {"uint8": (0, 255), "int32": (-(2**31), 2**31 - 1)}


@dataclass(frozen=True)
class Spec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    lo: int = 0
    hi: int = 0
    vocabulary: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        return "string" if self.dtype == "string" else "float" if self.dtype.startswith("float") else "int"


def specs(model: str) -> list[Spec]:
    out = []
    for f in zoo.manifest(model)["signature"]["features"]:
        lo, hi = LIMITS.get(f["dtype"], (0, 0))
        if f.get("index_range"):
            lo, hi = max(lo, f["index_range"][0]), min(hi, f["index_range"][1] - 1)
        vocab = tuple(f["vocabulary"]) if f.get("vocabulary") else None
        out.append(Spec(f["name"], f["dtype"], tuple(f["shape"]), lo, hi, vocab))
    return out


@dataclass(frozen=True)
class Effect:
    """What a mutation does to its example: breaks it in v1 and/or v2; `shallower`: fewer nesting levels."""

    label: str
    v1: bool
    v2: bool
    shallower: bool = False
    late: bool = False


@dataclass
class Body:
    """A mutated batch: the rows, and per row which inputs each protocol must name."""

    model: str
    rows: list[dict[str, Any]]
    v1_breaks: list[set[str]] = field(default_factory=list)
    v2_breaks: set[str] = field(default_factory=set)
    # Breaks judged after coercion (see the module's docstring), per row for v1 and in all for v2.
    v1_late: list[set[str]] = field(default_factory=list)
    v2_late: set[str] = field(default_factory=set)
    # Rows with a missing input or an unknown key: (those keys), for the relaxed check of such rows.
    key_errors: list[set[str]] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    shallower: bool = False
    structural: bool = False  # some row lost or gained a key: only sendable as v1 rows


letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
moderate = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def leaf_mutations(spec: Spec) -> st.SearchStrategy[tuple[Any, Effect]]:
    """A new value for one leaf of the input, and its effect."""
    common = [
        st.just((None, Effect("null", True, True))),
        st.just(({"v": 1}, Effect("object", True, True))),
    ]
    if spec.kind == "string":
        valid = st.sampled_from(spec.vocabulary) if spec.vocabulary else st.text(max_size=12)
        out = [
            valid.map(lambda v: (v, Effect("string", False, False))),
            valid.map(lambda v: ([v], Effect("wrapped", True, False))),
            st.integers(-5, 5).map(lambda v: (v, Effect("number", True, True))),
            st.booleans().map(lambda v: (v, Effect("boolean", True, True))),
        ]
        if spec.vocabulary:
            unknown = letters.filter(lambda t: t not in (spec.vocabulary or ()))
            out.append(unknown.map(lambda v: (v, Effect("unknown category", True, True))))
        return st.one_of(*out, *common)
    bad_numbers = [
        st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda v: (v, Effect("non-finite", True, True))),
        letters.map(lambda v: (v, Effect("text", True, True))),
    ]
    if spec.kind == "float":
        return st.one_of(
            moderate.map(lambda v: (v, Effect("float", False, False))),
            st.integers(-1000, 1000).map(lambda v: (v, Effect("int", False, False))),
            moderate.map(lambda v: (repr(v), Effect("numeric string", False, True))),
            st.booleans().map(lambda v: (v, Effect("boolean", False, True))),
            moderate.map(lambda v: ([v], Effect("wrapped", True, False))),
            st.sampled_from([1e39, -1e300]).map(
                lambda v: (v, Effect("beyond float32", True, True, late=spec.dtype == "float64"))
            ),
            *bad_numbers,
            *common,
        )
    ids = st.integers(spec.lo, spec.hi)
    return st.one_of(
        ids.map(lambda v: (v, Effect("int", False, False))),
        ids.map(lambda v: (float(v), Effect("integral float", False, False))),
        ids.map(lambda v: (str(v), Effect("numeric string", False, True))),
        st.integers(0, 1).map(lambda v: (bool(v), Effect("boolean", False, True))),
        ids.map(lambda v: ([v], Effect("wrapped", True, False))),
        ids.map(lambda v: (v + 0.5, Effect("fraction", True, True))),
        st.integers(spec.hi + 1, spec.hi + 10**9).map(lambda v: (v, Effect("over range", True, True))),
        st.integers(spec.lo - 10**9, spec.lo - 1).map(lambda v: (v, Effect("under range", True, True))),
        *bad_numbers,
        *common,
    )


@st.composite
def mutate_input(draw: st.DrawFn, spec: Spec, value: Any) -> tuple[Any, Effect]:
    """One mutation of one input's value: a leaf, or (for arrays) an axis or the whole value."""
    if not spec.shape:
        return draw(leaf_mutations(spec))
    value = copy.deepcopy(value)
    how = draw(st.sampled_from(["leaf", "leaf", "shorter", "longer", "scalar"]))
    if how == "scalar":
        new, _ = draw(leaf_mutations(spec).filter(lambda m: not (m[1].v1 or m[1].v2 or isinstance(m[0], list))))
        # An input of shape [1] takes its one value bare too (docs/http-api.md); any other shape needs its array.
        return new, Effect("scalar for an array", spec.shape != (1,), False, shallower=True)
    depth = draw(st.integers(0, len(spec.shape) - 1))
    path = [draw(st.integers(0, d - 1)) for d in spec.shape[:depth]]
    node = value
    for i in path:
        node = node[i]
    if how == "shorter":
        node.pop()
        return value, Effect("axis one shorter", True, False)
    if how == "longer":
        node.append(copy.deepcopy(node[-1]))
        return value, Effect("axis one longer", True, False)
    for d in spec.shape[depth:-1]:  # down to a leaf
        node = node[draw(st.integers(0, d - 1))]
    at = draw(st.integers(0, spec.shape[-1] - 1))
    new, effect = draw(leaf_mutations(spec))
    node[at] = new
    return value, effect


def plain(row: dict[str, Any], all_specs: list[Spec]) -> bool:
    """A golden example whose every value has its plain JSON type (no numeric strings, booleans or b64)."""
    for s in all_specs:
        for leaf in _flat(row[s.name]):
            if (type(leaf) is not str) if s.kind == "string" else (type(leaf) not in (int, float)):
                return False
    return True


@st.composite
def near_valid(draw: st.DrawFn, model: str, structural: bool = True) -> Body:
    """1-3 golden examples of `model`, each with 0-2 inputs mutated (and maybe a key dropped or added)."""
    all_specs = specs(model)
    examples = [r for c in zoo.cases(model) for r in rows_of(model, c) if plain(r, all_specs)]
    body = Body(model, [])
    for _ in range(draw(st.integers(1, 3))):
        row = copy.deepcopy(draw(st.sampled_from(examples)))
        v1: set[str] = set()
        late: set[str] = set()
        keys: set[str] = set()
        chosen = draw(st.lists(st.sampled_from(all_specs), max_size=2, unique_by=lambda s: s.name))
        for spec in chosen:
            row[spec.name], effect = draw(mutate_input(spec, row[spec.name]))
            body.effects.append(f"{spec.name}: {effect.label}")
            body.shallower |= effect.shallower
            if effect.v1:
                (late if effect.late else v1).add(spec.name)
            if effect.v2:
                (body.v2_late if effect.late else body.v2_breaks).add(spec.name)
        if structural and draw(st.integers(0, 4)) == 0:
            untouched = [s.name for s in all_specs if s not in chosen]
            drop: bool = draw(st.booleans())
            if untouched and drop:
                name = draw(st.sampled_from(untouched))
                del row[name]
                body.effects.append(f"{name}: dropped")
            else:
                name = draw(letters.filter(lambda t: t not in {s.name for s in all_specs}))
                row[name] = 1
                body.effects.append(f"{name}: unknown key")
            keys.add(name)
            body.structural = True
        order = draw(st.permutations(list(row)))
        body.rows.append({k: row[k] for k in order})
        body.v1_breaks.append(v1 | keys)
        body.v1_late.append(late)
        body.key_errors.append(keys)
    return body


def count_breaks(body: Body) -> set[str]:
    """Inputs whose v2 tensor has a value count that does not fit [n, *shape]."""
    if body.structural:  # rows without some input are never sent as v2 tensors
        return set()
    n = len(body.rows)
    counts = {s.name: sum(len(_flat(r[s.name])) for r in body.rows) for s in specs(body.model)}
    return {s.name for s in specs(body.model) if counts[s.name] != n * math.prod(s.shape)}


def expected_breaks(body: Body) -> tuple[list[set[str]], set[str]]:
    """What each protocol must name: the early breaks, or (when there are none) the late ones."""
    v1 = body.v1_breaks if any(body.v1_breaks) else body.v1_late
    v2 = (body.v2_breaks | count_breaks(body)) or body.v2_late
    return v1, v2


def as_instances(body: Body) -> dict[str, Any]:
    return {"instances": body.rows}


def as_columns(body: Body) -> dict[str, Any]:
    return {"inputs": {s.name: [r[s.name] for r in body.rows] for s in specs(body.model)}}


def _flat(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    return [leaf for v in value for leaf in _flat(v)]


def as_v2(body: Body) -> dict[str, Any]:
    """One tensor per input: its declared datatype, shape [n, *shape], the rows' values flattened."""
    tensors = []
    for s in specs(body.model):
        data = [leaf for r in body.rows for leaf in _flat(r[s.name])]
        tensors.append({"name": s.name, "shape": [len(body.rows), *s.shape], "datatype": OIP[s.dtype], "data": data})
    return {"inputs": tensors}

"""A TF-Serving v1 body -> one batch per feature of the signature, or every reason it cannot be.

Accepted shapes, as TF Serving's REST API defines them, for any signature:
- row format, `{"instances": [...]}`: each instance an object with one key per feature (any
  order); or, for a single-feature model, the feature's value itself; or, when every feature is
  a scalar (tabular models), an array of values in the feature order;
- columnar format, `{"inputs": ...}`: an object of feature -> batch, or feature -> one example
  without the batch dimension (told apart by nesting depth against the feature's rank); for a
  single-feature model the value itself; for tabular models one ordered example or a list of them.
  An input of shape [1] takes its value bare too (`values.py`); an array of values for it is one
  example or a batch as the other inputs say, and is refused when no input says (all of shape [1]).

Every problem is collected with its instance and feature, not just the first. The values of
each feature are converted by `values.to_batch`, which owns the dtype, shape and range rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np

from handler.core.signature import SIGNATURE_NAME, Signature, TensorSpec
from handler.core.value_rules import Problems, ValuePolicy, kind_of, one_value
from handler.core.values import SMALL_BATCH, quick_batch, to_batch
from handler.errors import BadRequest, FieldError, InvalidInput

RequestFormat = Literal["instances", "inputs"]
TOP_LEVEL_KEYS = ("instances", "inputs", "signature_name")
_TOP_LEVEL = frozenset(TOP_LEVEL_KEYS)


@dataclass(frozen=True)
class CoercePolicy(ValuePolicy):
    """The value rules (`ValuePolicy`), and what to do with unknown inputs and large batches. Read from settings."""

    unknown_features: Literal["reject", "ignore"] = "reject"
    max_batch_size: int = 1024


@dataclass(frozen=True)
class CoercedRequest:
    """One array per feature, each [n, *shape], and how the answer is to be shaped."""

    columns: dict[str, np.ndarray]
    n: int
    format: RequestFormat
    batched: bool


def depth(value: Any) -> int:
    """Nesting depth along first elements: 0 for a scalar (or a {"b64": ...} leaf), 1 for [1, 2], ..."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


class Coercer:
    """Turns v1 bodies (and rows of files) into feature batches for one signature."""

    def __init__(self, signature: Signature, policy: CoercePolicy) -> None:
        self.signature = signature
        self.policy = policy
        self.features = signature.features
        self.names = signature.feature_names
        self._known = frozenset(self.names)
        self._single = self.features[0] if len(self.features) == 1 else None
        self._ordered = signature.scalar_features
        self._quick = [(f, quick_batch(f)) for f in self.features]
        # A row object's values in feature order, as a tuple (itemgetter of one name gives the bare value).
        self._row_values = itemgetter(*self.names) if len(self.names) > 1 else None

    # --- public --------------------------------------------------------------------------

    def coerce(self, body: Any) -> CoercedRequest:
        """Validate and convert a parsed JSON body; raise InvalidInput listing every problem."""
        if not isinstance(body, dict):
            raise InvalidInput([FieldError(None, None, f"the body must be a JSON object, got {kind_of(body)}")])
        has_inst, has_inp = "instances" in body, "inputs" in body
        if has_inst == has_inp:
            raise InvalidInput(
                [FieldError(None, None, "the body needs exactly one of 'instances' (rows) or 'inputs' (columns)")]
            )
        signature = body.get("signature_name")
        if signature not in (None, "", SIGNATURE_NAME):
            raise BadRequest(f"signature_name must be {SIGNATURE_NAME!r} (or left out): this model has one signature")
        extra = sorted(body.keys() - _TOP_LEVEL) if len(body) > 1 else []  # one key is instances or inputs
        if extra:
            raise InvalidInput([FieldError(None, k, "unknown top-level key") for k in extra])
        if has_inst:
            rows = body["instances"]
            if not isinstance(rows, list):
                raise InvalidInput([FieldError(None, "instances", f"must be an array, got {kind_of(rows)}")])
            return self._rows(rows, "instances", batched=True)
        return self._inputs(body["inputs"])

    def coerce_rows(
        self, rows: Sequence[Any], first_index: int = 0
    ) -> tuple[dict[str, np.ndarray], list[FieldError], np.ndarray]:
        """Rows of a file, each judged alone: (batches of the good rows, errors, positions of the good rows).

        Errors carry instance = first_index + the row's position.
        """
        values, problems = self._frame_rows(rows)
        return self.coerce_values(values, len(rows), first_index, problems)

    def coerce_values(
        self,
        values: Mapping[str, Sequence[Any]],
        n: int,
        first_index: int = 0,
        problems: dict[int, list[tuple[str | None, str]]] | None = None,
    ) -> tuple[dict[str, np.ndarray], list[FieldError], np.ndarray]:
        """Per feature, one value per row (a list, or an array a reader made): like `coerce_rows`."""
        problems = problems if problems is not None else {}
        columns = self._convert(values, n, problems)
        bad = sorted(problems)
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        errors = [FieldError(first_index + i, name, reason) for i in bad for name, reason in problems[i]]
        if bad:
            columns = {name: col[keep] for name, col in columns.items()}
        return columns, errors, np.flatnonzero(keep)

    def coerce_tensors(self, values: Mapping[str, Sequence[Any]], n: int) -> CoercedRequest:
        """One batch per feature, already framed (e.g. OIP v2 tensors): check names and values, or raise."""
        errors = self._key_errors(values.keys(), None)
        if errors:
            raise InvalidInput(errors)
        self._check_batch(n, "inputs")
        problems: dict[int, list[tuple[str | None, str]]] = {}
        columns = self._convert(values, n, problems)
        self._raise(problems)
        return CoercedRequest(columns, n, "inputs", True)

    # --- body shapes ---------------------------------------------------------------------

    def _rows(self, rows: list[Any], fmt: RequestFormat, batched: bool) -> CoercedRequest:
        self._check_batch(len(rows), fmt)
        values, problems = self._frame_rows(rows)
        columns = self._convert(values, len(rows), problems)
        self._raise(problems)
        return CoercedRequest(columns, len(rows), fmt, batched)

    def _inputs(self, inputs: Any) -> CoercedRequest:
        if isinstance(inputs, dict) and not (self._single is not None and _is_leaf(inputs)):
            return self._columns(inputs)
        if self._ordered and isinstance(inputs, list) and len(self.names) > 1:
            # Tabular: one ordered example, or a list of them.
            if depth(inputs) == 1:
                return self._rows([inputs], "inputs", batched=False)
            return self._rows(inputs, "inputs", batched=True)
        if self._single is not None:
            return self._columns({self._single.name: inputs})
        raise InvalidInput(
            [
                FieldError(
                    None,
                    "inputs",
                    f"must be an object with one entry per input ({', '.join(self.names)}), got {kind_of(inputs)}",
                )
            ]
        )

    def _columns(self, cols: Mapping[str, Any]) -> CoercedRequest:
        errors = self._key_errors(cols.keys(), None)
        present = [f for f in self.features if f.name in cols]
        batched_of = {f.name: _batched(f, cols[f.name]) for f in present}
        decided = [b for b in batched_of.values() if b is not None]
        if decided or not present:
            batched = any(decided) if present else True
        else:  # every input of shape [1], each an array: one example only if each holds one value
            batched = False
            errors.extend(_ambiguous(f, cols[f.name]) for f in present if len(cols[f.name]) != 1)
        for f in present:
            if batched_of[f.name] not in (None, batched):
                errors.append(
                    FieldError(
                        None,
                        f.name,
                        f"is one example ({f.describe()}) while other inputs are batches: "
                        f"send every input with the batch dimension, or every one without",
                    )
                )
        lengths = {f.name: len(cols[f.name]) for f in present if batched and isinstance(cols[f.name], list)}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
            errors.append(FieldError(None, None, f"inputs have different batch sizes ({desc})"))
        if errors:
            raise InvalidInput(errors)
        n = next(iter(lengths.values()), 1) if batched else 1
        self._check_batch(n, "inputs")
        values = {f.name: (cols[f.name] if batched else [cols[f.name]]) for f in self.features}
        problems: dict[int, list[tuple[str | None, str]]] = {}
        columns = self._convert(values, n, problems)
        if problems:
            flat = [
                FieldError(i if batched else None, name, reason)
                for i in sorted(problems)
                for name, reason in problems[i]
            ]
            raise InvalidInput(flat)
        return CoercedRequest(columns, n, "inputs", batched)

    # --- framing rows into per-feature lists -----------------------------------------------

    def _frame_rows(self, rows: Sequence[Any]) -> tuple[dict[str, list[Any]], dict[int, list[tuple[str | None, str]]]]:
        """Per feature, the value of each row (None where the row could not give one), and row problems."""
        names = self.names
        known = self._known
        # The common case first: every row an object with exactly the feature names.
        plain = rows and set(map(type, rows)) == _DICT and set(map(len, rows)) == {len(names)}
        if plain and self._row_values is not None:
            # Objects of as many keys as there are features, each feature among them: exactly the features.
            try:
                per_feature = list(zip(*map(self._row_values, rows), strict=True))
            except KeyError:
                pass
            else:
                return dict(zip(names, map(list, per_feature), strict=True)), {}
        if all(type(r) is dict and r.keys() == known for r in rows):
            return {name: [r[name] for r in rows] for name in names}, {}
        values: dict[str, list[Any]] = {name: [] for name in names}
        problems: dict[int, list[tuple[str | None, str]]] = {}
        for i, row in enumerate(rows):
            got = self._row(row, i, problems)
            for name in names:
                values[name].append(got.get(name, _ABSENT) if got is not None else _ABSENT)
        return values, problems

    def _row(self, row: Any, i: int, problems: dict[int, list[tuple[str | None, str]]]) -> dict[str, Any] | None:
        single = self._single
        if isinstance(row, dict) and not (single is not None and _is_leaf(row)):
            errs = self._key_errors(row.keys(), i)
            if errs:  # named here; the inputs it does give are still judged, so every problem is listed at once
                problems.setdefault(i, []).extend((e.feature, e.reason) for e in errs)
            return row
        if self._ordered and isinstance(row, list) and (single is None or depth(row) == 1):
            if len(row) != len(self.names):
                reason = (
                    f"has {len(row)} values but the model takes {len(self.names)}, "
                    f"in this order: {', '.join(self.names)}"
                )
                problems.setdefault(i, []).append((None, reason))
                return None
            return dict(zip(self.names, row, strict=True))
        if single is not None:
            return {single.name: row}
        reason = (
            f"must be an object with one entry per input ({', '.join(self.names)})"
            + (" or an array of values in that order" if self._ordered else "")
            + f", got {kind_of(row)}"
        )
        problems.setdefault(i, []).append((None, reason))
        return None

    def _key_errors(self, keys: Any, i: int | None) -> list[FieldError]:
        errors: list[FieldError] = []
        if self.policy.unknown_features == "reject":
            errors.extend(FieldError(i, str(k), "is not an input of this model") for k in keys if k not in self._known)
        errors.extend(FieldError(i, n, "is missing") for n in self.names if n not in keys)
        return errors

    # --- values ----------------------------------------------------------------------------

    def _convert(
        self, values: Mapping[str, Sequence[Any]], n: int, problems: dict[int, list[tuple[str | None, str]]]
    ) -> dict[str, np.ndarray]:
        """Convert each feature's values; add its problems (a value a row did not give is not judged)."""
        policy = self.policy
        columns: dict[str, np.ndarray] = {}
        framed_bad = set(problems)  # rows refused while framing, before any value is judged
        if not framed_bad and n <= SMALL_BATCH:
            # A few rows: each scalar input checked in Python; `to_batch` only for what needs a closer look.
            for f, quick in self._quick:
                given = values[f.name]
                arr = quick(given) if quick is not None and type(given) is list else None
                if arr is None:
                    arr, bad = to_batch(f, given, policy)
                    _merge(problems, bad, f.name)
                columns[f.name] = arr
            return columns
        for f in self.features:
            vals: Any = values[f.name]
            ok: list[int] | None = None
            if framed_bad and isinstance(vals, np.ndarray):
                ok = [i for i in range(n) if i not in framed_bad]
                vals = vals[ok]
            elif framed_bad:
                ok = [i for i, v in enumerate(vals) if v is not _ABSENT]
                vals = [vals[i] for i in ok]
            arr, bad = to_batch(f, vals, policy)
            if ok is not None:
                # Rows refused while framing are not judged again: convert the rest, leave zeros in their place.
                full = np.zeros((n, *arr.shape[1:]), dtype=arr.dtype)
                full[ok] = arr
                arr, bad = full, {ok[j]: reasons for j, reasons in bad.items()}
            _merge(problems, bad, f.name)
            columns[f.name] = arr
        return columns

    def _check_batch(self, n: int, where: str) -> None:
        if n == 0:
            raise InvalidInput([FieldError(None, where, "is empty: send at least one example")])
        if n > self.policy.max_batch_size:
            raise InvalidInput(
                [
                    FieldError(
                        None,
                        where,
                        f"holds {n} examples, over MAX_BATCH_SIZE={self.policy.max_batch_size}: split the batch",
                    )
                ]
            )

    @staticmethod
    def _raise(problems: dict[int, list[tuple[str | None, str]]]) -> None:
        if problems:
            raise InvalidInput([FieldError(i, name, reason) for i in sorted(problems) for name, reason in problems[i]])


# A value a row did not give (its key is missing, or the row is no object): not judged, already reported.
_ABSENT = object()
_DICT = {dict}


def _batched(spec: TensorSpec, value: Any) -> bool | None:
    """Whether a column's value is a batch (nested deeper than the input's rank) or one example; None: either.

    An array of values for an input of shape [1] is one example ([54]) or a batch of bare values ([54, 60]):
    the request's other inputs decide.
    """
    d = depth(value)
    if one_value(spec) and d == 1:
        return None
    return d > spec.rank


def _ambiguous(spec: TensorSpec, value: list[Any]) -> FieldError:
    return FieldError(
        None,
        spec.name,
        f"has {len(value)} values but takes one per example, and no input of the request tells one example from "
        f"a batch (each takes one value): send a batch with each value in an array of one, or as rows (instances)",
    )


def _is_leaf(value: Mapping[str, Any]) -> bool:
    return list(value) == ["b64"]


def _merge(problems: dict[int, list[tuple[str | None, str]]], bad: Problems, name: str) -> None:
    for i, reasons in bad.items():
        problems.setdefault(i, []).extend((name, r) for r in reasons)

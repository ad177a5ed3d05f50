"""One request through the core: coerce -> preprocess -> model -> answer."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from handler.core.answer import format_v1
from handler.core.artifacts import Artifacts
from handler.core.coerce import CoercePolicy, Coercer
from handler.core.golden import replay
from handler.core.inference_ids import RowIds
from handler.core.model import DEFAULT_CUSTOM_OBJECT_MODULES, LOADERS, Arrays, Forward, LazyModel, warmup_inputs
from handler.core.preprocessing import PLAUSIBLE_SCALE, Preprocessor
from handler.core.values import Coded
from handler.errors import ArtifactError, FieldError, InvalidInput, ModelLoadError, NonFiniteOutput, SkewlessError

log = logging.getLogger("skewless.service")

# Up to this many output values, checking them in Python is cheaper than numpy's fixed cost per call.
_FEW = 16


@dataclass
class Timings:
    """What a prediction cost: the inference metrics (`monitoring/metrics.py`) and Triton's statistics."""

    batch_size: int = 0
    inference_seconds: float = 0.0
    input_seconds: float = 0.0  # coerced features to the model's inputs (the numpy preprocessing, if any)
    output_seconds: float = 0.0  # the outputs un-scaled (a scaled target) and checked for NaN and infinity


@dataclass
class Prediction:
    """The outputs of a batch, and the rows that have no answer (their outputs are not to be used)."""

    outputs: Arrays
    # Rows whose input overflowed the model's dtype after preprocessing (the client's to fix).
    input_problems: dict[int, list[FieldError]] = field(default_factory=dict)
    # Rows for which the model itself answered NaN or infinity.
    output_problems: dict[int, list[FieldError]] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)  # what it cost
    ids: RowIds | None = None  # the rows' inference ids, as the trigger named them (None: it named none)

    @property
    def problems(self) -> dict[int, list[FieldError]]:
        merged = {i: list(errs) for i, errs in self.input_problems.items()}
        for i, errs in self.output_problems.items():
            merged.setdefault(i, []).extend(errs)
        return merged

    def raise_for_problems(self) -> None:
        """A request is answered whole or refused: InvalidInput for bad inputs, NonFiniteOutput otherwise."""
        if self.input_problems:
            raise InvalidInput([e for i in sorted(self.problems) for e in self.problems[i]])
        if self.output_problems:
            raise NonFiniteOutput([e for i in sorted(self.output_problems) for e in self.output_problems[i]])


# Sees every served batch (coerced features, and its Prediction): the drift watch, data capture.
BatchObserver = Callable[[Mapping[str, np.ndarray], Prediction], None]
# Set while serving requests that are not users' traffic (the deploy gate's golden cases): no observer sees them.
_UNOBSERVED: contextvars.ContextVar[bool] = contextvars.ContextVar("skewless_unobserved", default=False)


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """Within the block, the batches served are answered as usual but kept from the observers."""
    token = _UNOBSERVED.set(True)
    try:
        yield
    finally:
        _UNOBSERVED.reset(token)


@dataclass
class Service:
    """The model behind every protocol and trigger."""

    artifacts: Artifacts
    policy: CoercePolicy
    model: LazyModel
    runtime: str = "tensorflow"
    warnings: list[str] = field(default_factory=list)
    coercer: Coercer = field(init=False)
    last: Timings = field(default_factory=Timings)
    observers: list[BatchObserver] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.coercer = Coercer(self.artifacts.signature, self.policy)

    @classmethod
    def create(
        cls,
        artifacts: Artifacts,
        policy: CoercePolicy,
        runtime: str = "tensorflow",
        custom_object_modules: tuple[str, ...] = DEFAULT_CUSTOM_OBJECT_MODULES,
    ) -> Service:
        target = artifacts.preprocessor.target if artifacts.preprocessor is not None else None
        wrong = target.problems(artifacts.signature.outputs) if target is not None else []
        if wrong:  # the export checked it: only a hand-edited file gets here
            raise ArtifactError(f"preprocessing.json's target scaling does not fit the model: {'; '.join(wrong)}")
        warnings = artifacts.manifest.version_mismatches(runtime)
        for line in warnings:
            log.warning("library version differs from export: %s", line)
        # Other library versions than at export may compute other numbers: prove they do not before serving.
        verify = (lambda fn: check_golden(artifacts, policy, fn, warnings)) if warnings else None
        loader = partial(LOADERS[runtime], modules=custom_object_modules)
        model = LazyModel(artifacts, loader, verify=verify, warmup=partial(golden_example, artifacts))
        return cls(artifacts=artifacts, policy=policy, model=model, runtime=runtime, warnings=warnings)

    @property
    def name(self) -> str:
        return self.artifacts.manifest.name

    @property
    def output_names(self) -> list[str]:
        return self.artifacts.signature.output_names

    def load_failure(self) -> str | None:
        """Why the last model load failed (until one succeeds), in words safe to answer with; else None."""
        exc = self.model.last_error
        if exc is None or self.model.loaded:
            return None
        if isinstance(exc, SkewlessError):
            return exc.message
        return f"the last model load failed ({type(exc).__name__}); the next prediction tries again"

    def forward(self) -> Forward:
        """The loaded model; an I/O or timeout failure while loading is a ModelLoadError (503, retried).

        A failed load is never cached: the next call tries again. Anything else is a bug of ours (500).
        """
        try:
            return self.model.load()
        except OSError as exc:  # TimeoutError, a read cut short, a full /tmp: transient or the deployment's
            raise ModelLoadError(
                f"the model could not be loaded ({type(exc).__name__}): this is transient or a fault of the "
                f"deployment; the next request tries again"
            ) from exc

    def run(
        self,
        columns: Mapping[str, np.ndarray],
        forward: Forward | None = None,
        coded: Mapping[str, Coded] | None = None,
        ids: RowIds | None = None,
    ) -> Prediction:
        """Feature batches (already coerced) -> outputs by name, and the rows that have no answer.

        `coded`: text columns also given as (codes, levels), as columnar readers hold them (see `Coded`).
        `ids`: the rows' inference ids, handed to the observers with the prediction (data capture records them).
        """
        begin = time.perf_counter()
        inputs, input_problems = prepare(self.artifacts, columns, coded)
        prepared = time.perf_counter()
        fn = forward or self.forward()  # a first, lazy load is ModelLoadTime, not inference time
        start = time.perf_counter()
        outputs = fn(inputs)
        inferred = time.perf_counter()
        outputs = finish(self.artifacts, outputs)
        n = len(next(iter(inputs.values())))
        # A row refused for its input is not also reported for the NaN the model made of it.
        output_problems = {i: e for i, e in non_finite_outputs(outputs).items() if i not in input_problems}
        self.last = Timings(
            batch_size=n,
            inference_seconds=inferred - start,
            input_seconds=prepared - begin,
            output_seconds=time.perf_counter() - inferred,
        )
        prediction = Prediction(outputs, input_problems, output_problems, self.last, ids)
        if not _UNOBSERVED.get():
            for observe in self.observers:  # every trigger comes through here, S3 chunks and SQS messages included
                observe(columns, prediction)
        return prediction

    def predict_v1(self, body: Any, forward: Forward | None = None, ids: RowIds | None = None) -> dict[str, Any]:
        """A parsed TF-Serving v1 body -> its v1 response body (raises InvalidInput, NonFiniteOutput)."""
        req = self.coercer.coerce(body)
        prediction = self.run(req.columns, forward, ids=ids)
        prediction.raise_for_problems()
        return format_v1(prediction.outputs, req, self.output_names)


def prepare(
    artifacts: Artifacts, columns: Mapping[str, np.ndarray], coded: Mapping[str, Coded] | None = None
) -> tuple[Arrays, dict[int, list[FieldError]]]:
    """Feature batches -> the model's inputs: the numpy preprocessing, or the features themselves."""
    pre = artifacts.preprocessor
    if pre is None:
        return dict(columns), {}
    x = pre.transform(columns, coded)
    model_input = artifacts.signature.inputs[0]
    if pre.in_bounds(x):  # the common case, in two numpy calls
        return {model_input.name: x}, {}
    return {model_input.name: x}, _input_problems(pre, columns, x, model_input.dtype)


def finish(artifacts: Artifacts, outputs: Arrays) -> Arrays:
    """The model's outputs -> the answer's: un-scaled to training's units when the target was scaled.

    Before the NaN check and the answer, so every trigger, both runtimes, the golden replay and the drift watch
    see training's units (an un-scaled value beyond float32 is infinity, which the check refuses).
    """
    pre = artifacts.preprocessor
    if pre is None or pre.target is None:
        return outputs
    return pre.target.apply(outputs, artifacts.signature.output_names)


def _input_problems(
    pre: Preprocessor, columns: Mapping[str, np.ndarray], x: np.ndarray, dtype: str
) -> dict[int, list[FieldError]]:
    """Rows with a number the model cannot take, and why, one reason per feature (the first that applies)."""
    problems: dict[int, list[FieldError]] = {}

    def add(row: int, name: str, reason: str) -> None:
        if not any(e.feature == name for e in problems.get(row, [])):
            problems.setdefault(row, []).append(FieldError(row, name, reason))

    # A raw number the model's dtype cannot hold is refused as such, even where scaling would bring it in range.
    limit = float(np.finfo(np.dtype(dtype)).max)
    for f in pre.features:
        col = columns[f.name]
        if col.dtype.kind == "f":
            for row in np.flatnonzero(np.abs(col) > limit).tolist():
                add(row, f.name, f"is too large for the model: {dtype} holds at most ±{limit:.3g}")
    implausible = (
        f"is more than {PLAUSIBLE_SCALE:.0e} training standard deviations (or ranges) from the training data: "
        f"not a plausible value, and the model's {dtype} arithmetic is not reliable there"
    )
    for row, names in pre.implausible(x).items():
        for name in names:
            add(row, name, implausible)
    for row, names in pre.overflows(x).items():
        for name in names:
            add(row, name, f"is too large for the model: after preprocessing it does not fit {dtype}")
    return problems


def golden_example(artifacts: Artifacts) -> Arrays:
    """The first example of the first golden case the serving path accepts, as the model takes it: its first call.

    A real request's values, not made-up ones: a lookup without an OOV index (FeatureSpace's
    `integer_categorical(num_oov_indices=0)`) fails inside the graph on a 0 or an empty string.
    """
    # The export's own requests, read with the export's policy (the settings' policy may refuse what they send).
    coercer = Coercer(artifacts.signature, CoercePolicy(max_batch_size=1 << 30))
    for case in artifacts.golden().get("cases") or []:
        try:
            req = coercer.coerce(case["request"])
        except SkewlessError:  # refused: the export's replay names it, the warm-up takes the next case
            continue
        inputs, _ = prepare(artifacts, {name: col[:1] for name, col in req.columns.items()})
        return inputs
    return warmup_inputs(artifacts.signature)


def non_finite_outputs(outputs: Arrays) -> dict[int, list[FieldError]]:
    """Rows for which some float output is NaN or infinite: never an answer."""
    problems: dict[int, list[FieldError]] = {}
    for name, arr in outputs.items():
        if arr.dtype.kind != "f":
            continue
        if arr.size <= _FEW and all(map(math.isfinite, arr.ravel().tolist())):  # numpy's fixed cost, skipped
            continue
        finite = np.isfinite(arr)
        if finite.all():
            continue
        rows = np.flatnonzero(~finite.reshape(len(arr), -1).all(axis=1))
        for row in rows.tolist():
            problems.setdefault(row, []).append(
                FieldError(
                    row,
                    name,
                    "the model's output is NaN or infinite for this instance: the input is probably far "
                    "outside what the model was trained on",
                )
            )
    return problems


def check_golden(artifacts: Artifacts, policy: CoercePolicy, forward: Forward, why: list[str]) -> None:
    """Replay golden.json through `forward`; refuse the model (ModelLoadError) if any answer differs."""
    probe = Service(artifacts=artifacts, policy=policy, model=LazyModel(artifacts))
    answer: Callable[[Any], Any] = partial(probe.predict_v1, forward=forward)
    for result in replay(artifacts.golden(), answer, artifacts.signature.output_names):
        if not result.ok:
            raise ModelLoadError(
                f"refusing to serve: with {'; '.join(why)}, golden case '{result.name}' gives {result.detail}: "
                f"install the library versions of the export or re-export the model"
            )

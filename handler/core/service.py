"""One request through the core: coerce -> preprocess -> model -> postprocess."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handler.core.artifacts import Artifacts
from handler.core.coerce import CoercedRequest, CoercePolicy, Coercer
from handler.core.golden import compare
from handler.core.model import LOADERS, Forward, LazyModel
from handler.errors import ModelLoadError, SkewlessError

log = logging.getLogger("skewless.service")


@dataclass
class Timings:
    """What the last prediction cost; adapters turn these into metrics."""

    batch_size: int = 0
    inference_seconds: float = 0.0


def format_v1(outputs: np.ndarray, req: CoercedRequest) -> dict[str, Any]:
    """Shape outputs as TF Serving does: rows -> "predictions", columns -> "outputs"."""
    if req.format == "instances":
        return {"predictions": outputs.tolist()}
    if not req.batched:
        return {"outputs": outputs[0].tolist()}
    return {"outputs": outputs.tolist()}


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

    def __post_init__(self) -> None:
        self.coercer = Coercer(self.artifacts.preprocessor, self.policy)

    @classmethod
    def create(cls, artifacts: Artifacts, policy: CoercePolicy, runtime: str = "tensorflow") -> Service:
        warnings = artifacts.manifest.version_mismatches(runtime)
        for line in warnings:
            log.warning("library version differs from export: %s", line)
        # Other library versions than at export may compute other numbers: prove they do not before serving.
        verify = (lambda fn: check_golden(artifacts, policy, fn, warnings)) if warnings else None
        model = LazyModel(artifacts, LOADERS[runtime], verify=verify)
        return cls(artifacts=artifacts, policy=policy, model=model, runtime=runtime, warnings=warnings)

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

    @property
    def name(self) -> str:
        return self.artifacts.manifest.name

    def predict_columns(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Raw columns (already coerced) -> model outputs, one row per example."""
        x = self.artifacts.preprocessor.transform(columns)
        forward = self.forward()  # a first, lazy load is ModelLoadTime, not inference time
        start = time.perf_counter()
        out = forward(x)
        self.last = Timings(batch_size=len(x), inference_seconds=time.perf_counter() - start)
        return out

    def predict_v1(self, body: Any) -> dict[str, Any]:
        """A parsed TF-Serving v1 body -> its v1 response body (raises InvalidInput)."""
        req = self.coercer.coerce(body)
        return format_v1(self.predict_columns(req.columns), req)

    def metadata(self) -> dict[str, Any]:
        """Signature and version from the manifest: answered without loading TensorFlow."""
        m = self.artifacts.manifest
        return {
            "model_spec": {"name": m.name, "signature_name": "serving_default", "version": m.version},
            "metadata": {
                "signature_def": {"inputs": m.inputs, "outputs": m.outputs},
                "raw_features": m.raw.get("raw_features", []),
                "exported_with": m.versions,
            },
        }


def check_golden(artifacts: Artifacts, policy: CoercePolicy, forward: Forward, why: list[str]) -> None:
    """Replay golden.json through `forward`; refuse the model (ModelLoadError) if any answer differs."""
    golden = artifacts.golden()
    tol = golden["tolerance"]
    coercer = Coercer(artifacts.preprocessor, policy)
    for case in golden["cases"]:
        try:
            req = coercer.coerce(case["request"])
        except SkewlessError as exc:
            ok, detail = False, f"an error ({exc.message})"
        else:
            actual = format_v1(forward(artifacts.preprocessor.transform(req.columns)), req)
            ok, _, detail = compare(case["response"], actual, tol["atol"], tol["rtol"])
        if not ok:
            raise ModelLoadError(
                f"refusing to serve: with {'; '.join(why)}, golden case '{case['name']}' gives {detail}: "
                f"install the library versions of the export or re-export the model"
            )

"""One request through the core: coerce -> preprocess -> model -> postprocess."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handler.core.artifacts import Artifacts
from handler.core.coerce import CoercedRequest, CoercePolicy, Coercer
from handler.core.model import LOADERS, LazyModel


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
    coercer: Coercer = field(init=False)
    last: Timings = field(default_factory=Timings)

    def __post_init__(self) -> None:
        self.coercer = Coercer(self.artifacts.preprocessor, self.policy)

    runtime: str = "tensorflow"

    @classmethod
    def create(cls, artifacts: Artifacts, policy: CoercePolicy, runtime: str = "tensorflow") -> Service:
        return cls(artifacts=artifacts, policy=policy, model=LazyModel(artifacts, LOADERS[runtime]), runtime=runtime)

    @property
    def name(self) -> str:
        return self.artifacts.manifest.name

    def predict_columns(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Raw columns (already coerced) -> model outputs, one row per example."""
        x = self.artifacts.preprocessor.transform(columns)
        forward = self.model.load()  # a first, lazy load is ModelLoadTime, not inference time
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

"""Triton's extensions to the Open Inference Protocol that its clients call: model configuration and repository index.

- `GET /v2/models/{name}[/versions/{v}]/config` answers the JSON form of Triton's `ModelConfig`
  (model_config.proto): one input per feature, one output per model output. The batch is Triton's
  own (`max_batch_size` is MAX_BATCH_SIZE), so `dims` are per example, -1 where a dimension is
  free; a scalar feature is `dims: [1]` reshaped to `[]`, as Triton writes one (our tensors take
  `[n, 1]` for it too).
- `POST /v2/repository/index` lists the one model this function serves, READY unless its last
  load failed (UNAVAILABLE, with the reason), as Triton lists a repository's models.
The statistics extension is `monitoring/stats.py`.
"""

from __future__ import annotations

from typing import Any

from handler.core.service import Service
from handler.core.signature import TensorSpec
from handler.errors import BadRequest

MODEL_FILES = {"tensorflow": "model.keras", "litert": "model.tflite"}


def _data_type(spec: TensorSpec) -> str:
    # Triton's DataType names: TYPE_ and the OIP datatype, but TYPE_STRING for BYTES.
    datatype = spec.oip_datatype
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": spec.name, "data_type": _data_type(spec)}
    if spec.shape:
        tensor["dims"] = [-1 if d is None else d for d in spec.shape]
    else:
        tensor["dims"] = [1]
        tensor["reshape"] = {"shape": []}
    return tensor


def model_config(service: Service, max_batch_size: int) -> dict[str, Any]:
    """The served model as Triton's ModelConfig JSON."""
    m = service.artifacts.manifest
    signature = service.artifacts.signature
    return {
        "name": m.name,
        "platform": f"skewless_{service.runtime}",  # as in the OIP model metadata
        "backend": "skewless",
        "version_policy": {"latest": {"num_versions": 1}},  # one version is served: the manifest's
        "max_batch_size": max_batch_size,
        "input": [{**_tensor(f), "format": "FORMAT_NONE", "optional": False} for f in signature.features],
        "output": [_tensor(o) for o in signature.outputs],
        # One instance on the CPU: a container answers one request at a time.
        "instance_group": [{"name": f"{m.name}_0", "kind": "KIND_CPU", "count": 1}],
        "default_model_filename": MODEL_FILES.get(service.runtime, ""),
    }


def index_filter(body: Any) -> bool:
    """The index body's `ready` (only ready models): false when left out; a body that is not an object is a 400."""
    if body is None:
        return False
    if not isinstance(body, dict):
        raise BadRequest('a repository index body must be a JSON object: {} or {"ready": true}')
    ready = body.get("ready", False)
    if not isinstance(ready, bool):
        raise BadRequest("'ready' must be true or false: true lists only the models ready for inference")
    return ready


def repository_index(service: Service, ready_only: bool, failed: str | None) -> list[dict[str, Any]]:
    """Triton's $repository_index_response: the served model, its version, state and `failed`, why it is not ready."""
    entry = {"name": service.name, "version": service.artifacts.manifest.version, "state": "READY"}
    if failed is not None:
        entry.update(state="UNAVAILABLE", reason=failed)  # Triton writes a reason only when there is one
    return [] if ready_only and failed is not None else [entry]

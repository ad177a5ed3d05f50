"""What one fresh benchmark process measures; run as `python -m benchmarks.probes NAME OUT.json`.

Each probe runs in its own process, so one runtime's imports never warm up another's. The cold starts have
probes of their own, which import nothing before the timed code (benchmarks/cold.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.drift_probe import warm_drift  # noqa: F401 (a probe: PROBES collects it by name)
from benchmarks.lambda_context import Context
from benchmarks.warm_path import warm_breakdown, warm_ratios  # noqa: F401 (probes, collected by name)

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "model_artifacts" / "churn"


def rows(n: int) -> list[dict[str, Any]]:
    """n golden rows (repeated as needed), as a client would send them."""
    golden = json.loads((MODEL_DIR / "golden.json").read_text())
    base = next(c for c in golden["cases"] if c["name"] == "batch_of_100")["request"]["instances"]
    return [base[i % len(base)] for i in range(n)]


def http_event(n: int) -> dict[str, Any]:
    """An HTTP API (v2) event carrying n rows to the TF-Serving predict route."""
    event: dict[str, Any] = json.loads((ROOT / "events" / "http_api.json").read_text())
    event["body"] = json.dumps({"instances": rows(n)})
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


def _timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# --- warm: repeated requests in one process -------------------------------------------------

BATCHES = (1, 32, 1024)


def warm_handler() -> dict[str, list[float]]:
    import handler.app

    out = {}
    for n in BATCHES:
        event = http_event(n)
        for _ in range(20):
            handler.app.lambda_handler(event, Context())
        out[str(n)] = _timed(lambda e=event: handler.app.lambda_handler(e, Context()), 2000 if n == 1 else 300)
    return out


def warm_usual_way() -> dict[str, list[float]]:
    from benchmarks import usual_way

    out = {}
    for n in BATCHES:
        event = http_event(n)
        for _ in range(5):
            usual_way.lambda_handler(event, Context())
        out[str(n)] = _timed(lambda e=event: usual_way.lambda_handler(e, Context()), 200 if n == 1 else 60)
    return out


def warm_numpy_floor() -> dict[str, list[float]]:
    """The same weights as a bare numpy forward pass on preprocessed input: the floor."""
    import keras

    import handler.custom_objects  # noqa: F401
    from handler.core.artifacts import Artifacts
    from handler.core.coerce import CoercePolicy, Coercer
    from handler.core.preprocessing import Preprocessor

    model = keras.saving.load_model(MODEL_DIR / "model.keras", compile=False, safe_mode=True)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    weights = [(np.asarray(d.kernel), np.asarray(d.bias)) for d in dense]
    temperature = model.get_layer("temperature").temperature
    pre = Preprocessor.load(MODEL_DIR / "preprocessing.json")

    def forward(x: np.ndarray) -> np.ndarray:
        for w, b in weights[:-1]:
            x = np.maximum(x @ w + b, 0.0)
        w, b = weights[-1]
        return 1.0 / (1.0 + np.exp(-(x @ w + b) / temperature))

    out = {}
    coercer = Coercer(Artifacts.open(MODEL_DIR).signature, CoercePolicy(max_batch_size=4096))
    for n in BATCHES:
        x = pre.transform(coercer.coerce({"instances": rows(n)}).columns)
        expected = np.asarray(model(x))
        assert np.allclose(forward(x), expected, atol=1e-5), "numpy forward pass differs from Keras"
        out[str(n)] = _timed(lambda x=x: forward(x), 2000 if n == 1 else 300)
    return out


# --- event-triggered: one S3 object through the S3 handler, against a local S3 server ---------


def _peak_rss_mb() -> float:
    """This process' peak resident memory in MB.

    Linux keeps ru_maxrss across fork and exec, so a probe's ru_maxrss starts at its parent's size
    (the benchmark runner's); VmHWM is the high-water mark of this process' own memory.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def s3_csv() -> dict[str, float]:
    """Predict the CSV named by BENCH_BUCKET/BENCH_KEY; time it and read the process' peak memory."""
    from handler.bootstrap import open_service
    from handler.settings import Settings
    from handler.triggers.s3 import job as s3

    settings = Settings.from_env()
    service = open_service(settings)
    service.model.load()
    base_rss = _peak_rss_mb()
    event = json.loads((ROOT / "events" / "s3_put.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = os.environ["BENCH_BUCKET"]
    record["object"].update({"key": os.environ["BENCH_KEY"], "eTag": ""})
    t = time.perf_counter()
    result = s3.handle_event(event, Context(), service, settings)
    seconds = time.perf_counter() - t
    [marker] = result["objects"]
    return {
        "seconds": seconds,
        "rows": marker["rows"],
        "predicted": marker["predicted"],
        "errors": marker["errors"],
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": base_rss,
    }


PROBES = {name: fn for name, fn in globals().items() if name.startswith(("warm_", "s3_"))}

if __name__ == "__main__":
    name, out_path = sys.argv[1], sys.argv[2]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = PROBES[name]()
    Path(out_path).write_text(json.dumps(result))

"""Triton's statistics extension (`GET /v2/models[/{name}[/versions/{v}]]/stats`): counts and times per model.

Every HTTP inference (TF Serving predict, classify and regress, OIP v2 infer) goes through
`triggers/http/routes.predicted`, which records it here with `STATS.request`. The counts live as long as the
process, so on Lambda they are per container (Triton's are per server, since it started).

What each field holds, by Triton's definitions:
- `success`, `fail`: requests that reached the model (a body refused by the coercer never does),
  with their time from the coerced batch to the checked outputs; a failure is a model that would
  not load, a row with no answer (NaN, an input the model's dtype cannot hold) or an error raised;
- `inference_count`: examples answered; `execution_count`: model calls (one per request: no
  dynamic batching here);
- `compute_input`: the numpy preprocessing (features to the model's inputs), `compute_infer`: the
  model call, `compute_output`: the outputs' NaN check; also per batch size in `batch_stats`;
- `queue`, `cache_hit`, `cache_miss`: zero. A container answers one request at a time, from no
  queue, and there is no response cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from handler.core.service import Service

_NS = 1_000_000_000


@dataclass
class Duration:
    """Triton's $duration_stat: how many times, and their total in nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStats:
    """The compute times of every execution of one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStats:
    """One model version's counts since the process started."""

    name: str
    version: str
    last_inference: int = 0  # ms since the epoch
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    compute: BatchStats = field(default_factory=BatchStats)
    batches: dict[int, BatchStats] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Triton's $model_stat."""

        def computed(b: BatchStats) -> dict[str, dict[str, int]]:
            return {
                "compute_input": b.compute_input.to_json(),
                "compute_infer": b.compute_infer.to_json(),
                "compute_output": b.compute_output.to_json(),
            }

        zero = Duration().to_json()
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                "queue": zero,
                **computed(self.compute),
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [{"batch_size": n, **computed(self.batches[n])} for n in sorted(self.batches)],
        }


class InferenceStats:
    """The statistics of every model version served by this process (one, on Lambda)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the local server answers on threads
        self._models: dict[tuple[str, str], ModelStats] = {}

    def _of(self, service: Service) -> ModelStats:
        key = (service.name, service.artifacts.manifest.version)
        if key not in self._models:
            self._models[key] = ModelStats(*key)
        return self._models[key]

    def model_stat(self, service: Service) -> dict[str, Any]:
        """The served version's $model_stat (zeros before its first inference: Triton lists a loaded model so)."""
        with self._lock:
            return self._of(service).to_json()

    @contextmanager
    def request(self, service: Service) -> Iterator[None]:
        """Count the inference run in the block: a success with the service's timings, or a failure if it raises."""
        started_ms = time.time_ns() // 1_000_000
        start = time.perf_counter_ns()
        try:
            yield
        except BaseException:
            with self._lock:
                stats = self._of(service)
                stats.fail.add(time.perf_counter_ns() - start)
                stats.last_inference = started_ms
            raise
        elapsed = time.perf_counter_ns() - start
        last = service.last  # set by this request's run: a container answers one request at a time
        times = (last.input_seconds, last.inference_seconds, last.output_seconds)
        ns_input, ns_infer, ns_output = (round(seconds * _NS) for seconds in times)
        with self._lock:
            stats = self._of(service)
            stats.success.add(elapsed)
            stats.last_inference = started_ms
            stats.inference_count += last.batch_size
            stats.execution_count += 1
            for b in (stats.compute, stats.batches.setdefault(last.batch_size, BatchStats())):
                b.compute_input.add(ns_input)
                b.compute_infer.add(ns_infer)
                b.compute_output.add(ns_output)


# Per process: on Lambda, per container.
STATS = InferenceStats()

"""Settings -> a ready Service: the one place that wires artifacts, policy and model together."""

from __future__ import annotations

import logging

from handler.core.artifacts import Artifacts
from handler.core.model import choose_runtime
from handler.core.service import Service
from handler.settings import Settings

log = logging.getLogger("skewless.bootstrap")


def open_service(settings: Settings, runtime: str | None = None) -> Service:
    """Verify the artifacts (hashes, consistency) and build the service; the model stays lazy.

    `runtime` overrides settings.serving_runtime (tensorflow, litert or auto).
    """
    artifacts = Artifacts.open(settings.model_dir)
    chosen, why = choose_runtime(artifacts, runtime or settings.serving_runtime)
    log.info("serving runtime: %s (%s)", chosen, why)
    service = Service.create(artifacts, settings.coerce_policy(), chosen)
    if settings.preload_model:
        service.model.load()
    return service

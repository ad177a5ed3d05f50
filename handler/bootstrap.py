"""Settings -> a ready Service: the one place that wires artifacts, policy and model together."""

from __future__ import annotations

from handler.core.artifacts import Artifacts
from handler.core.service import Service
from handler.settings import Settings


def open_service(settings: Settings) -> Service:
    """Verify the artifacts (hashes, consistency) and build the service; the model stays lazy."""
    artifacts = Artifacts.open(settings.model_dir)
    service = Service.create(artifacts, settings.coerce_policy())
    if settings.preload_model:
        service.model.load()
    return service

"""Settings -> a ready Service: the one place that wires artifacts, policy and model together."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from handler.errors import SkewlessError
from handler.settings import Settings

if TYPE_CHECKING:
    from handler.core.service import Service

log = logging.getLogger("skewless.bootstrap")


def model_dir(settings: Settings) -> Path:
    """MODEL_DIR, or the verified local copy of MODEL_S3_URI."""
    if not settings.model_s3_uri:
        return settings.model_dir
    from handler import model_store  # lazily: boto3 only when the model lives in S3

    s3 = model_store.make_client(settings.model_s3_timeout, settings.model_s3_max_attempts)
    local = model_store.fetch_model(settings.model_s3_uri, settings.model_cache_dir, s3)
    log.info("model fetched from %s into %s", settings.model_s3_uri, local)
    return local


def open_service(settings: Settings, runtime: str | None = None) -> Service:
    """Verify the artifacts (hashes, consistency) and build the service; the model stays lazy.

    `runtime` overrides settings.serving_runtime (tensorflow, litert or auto). With MODEL_S3_URI
    the artifacts are downloaded first and checked against the manifest (MODEL_DIR is not used).
    """
    # Imported here, not with this module: `Started` is imported at init, and the core (numpy) only when the
    # first event that needs the service opens it.
    from handler.core.artifacts import Artifacts
    from handler.core.model import choose_runtime
    from handler.core.service import Service

    artifacts = Artifacts.open(model_dir(settings), pin=settings.model_digest)
    chosen, why = choose_runtime(artifacts, runtime or settings.serving_runtime)
    log.info("serving runtime: %s (%s)", chosen, why)
    service = Service.create(artifacts, settings.coerce_policy(), chosen, settings.custom_object_modules)
    if settings.preload_model:
        service.model.load()
    return service


@dataclass(frozen=True)
class Started:
    """The service, or why it could not start: every trigger then answers with that reason (a 503), not a crash."""

    service: Service | None
    error: SkewlessError | None = None

    def require(self) -> Service:
        if self.service is None:
            raise self.error or SkewlessError("the service is not available")
        return self.service


def start(settings: Settings) -> Started:
    """`open_service`, with its refusal kept as the answer to every request (bad artifacts answer 503 with the
    reason, and /v2/health/ready says why, instead of an init crash that API Gateway would turn into a bare 502)."""
    try:
        return Started(open_service(settings))
    except SkewlessError as exc:
        log.error("the service cannot start: %s (%s)", exc.message, exc.code)
        return Started(None, exc)

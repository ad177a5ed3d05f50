"""A service over the committed artifacts, shared by the golden tests (loads TensorFlow once)."""

from __future__ import annotations

import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.settings import Settings
from tests.conftest import ARTIFACTS


@pytest.fixture(scope="session")
def service() -> Service:
    """The TensorFlow runtime (model.keras)."""
    return open_service(Settings(model_dir=ARTIFACTS), runtime="tensorflow")


@pytest.fixture(scope="session")
def litert_service() -> Service:
    """The LiteRT runtime (model.tflite), same coercion and preprocessing."""
    return open_service(Settings(model_dir=ARTIFACTS), runtime="litert")

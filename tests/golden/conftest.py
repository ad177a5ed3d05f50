"""A service over the committed artifacts, shared by the golden tests (loads TensorFlow once)."""

from __future__ import annotations

import pytest

from handler.bootstrap import open_service
from handler.core.service import Service
from handler.settings import Settings
from tests.conftest import ARTIFACTS


@pytest.fixture(scope="session")
def service() -> Service:
    return open_service(Settings(model_dir=ARTIFACTS))

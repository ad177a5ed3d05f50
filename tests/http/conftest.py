"""Fixtures for the HTTP tests: the app module (built once, as one Lambda container would)."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def app() -> ModuleType:
    import handler.app

    return handler.app

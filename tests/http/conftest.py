"""Fixtures for the HTTP tests: the app module (built once, as one Lambda container would) and one
Function per (model, runtime) for the reference models, built once per session."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.http.functions import FUNCTIONS, Functions


@pytest.fixture(scope="session")
def app() -> ModuleType:
    import handler.app

    return handler.app


@pytest.fixture(scope="session")
def functions() -> Functions:
    return FUNCTIONS

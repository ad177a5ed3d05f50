"""Fixtures for the Lambda runtime interface emulator tests: the binary and a running emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runtime_emulator import RuntimeEmulator
from tests.support.samcli import rie_binary


@pytest.fixture(scope="session")
def rie() -> Path:
    return rie_binary()


@pytest.fixture(scope="module")
def emulator(rie: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeEmulator]:
    """One emulator for the module: the first call is cold, the rest are warm, as in Lambda."""
    log = tmp_path_factory.mktemp("rie") / "emulator.log"
    with RuntimeEmulator(rie, log) as running:
        yield running

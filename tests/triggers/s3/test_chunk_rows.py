"""How many rows an S3 chunk holds: S3_CHUNK_ROWS when set, else as many as make 8 MiB of coerced input."""

from __future__ import annotations

import pytest

from handler.core.signature import TensorSpec
from handler.settings import Settings, SettingsError
from handler.triggers.s3.chunks import chunk_rows

MIB8 = 8 * 1024 * 1024


def test_tabular_rows_fill_eight_mib() -> None:
    # Nine float64 numbers (8 bytes) and three strings (counted 64 bytes each): 264 bytes a row.
    features = [TensorSpec(f"x{i}", "float64") for i in range(9)] + [TensorSpec(f"s{i}", "string") for i in range(3)]
    assert chunk_rows(features) == MIB8 // 264 == 31_775


def test_images_get_fewer_rows_and_never_fewer_than_64() -> None:
    assert chunk_rows([TensorSpec("image", "uint8", (28, 28, 1))]) == MIB8 // 784 == 10_699
    # 224 x 224 x 3 float32 is 602,112 bytes: 13 would fit; 64 is the floor (38 MB).
    assert chunk_rows([TensorSpec("image", "float32", (224, 224, 3))]) == 64


def test_a_free_dimension_counts_64_positions_and_tiny_rows_stop_at_65536() -> None:
    assert chunk_rows([TensorSpec("tokens", "int32", (None,))]) == MIB8 // (64 * 4) == 32_768
    assert chunk_rows([TensorSpec("flag", "bool")]) == 65_536


def test_the_setting_wins_and_auto_is_the_default() -> None:
    features = [TensorSpec("x", "float32")]
    assert chunk_rows(features, 7) == 7
    assert Settings.from_env({}).s3_chunk_rows == 0
    assert Settings.from_env({"S3_CHUNK_ROWS": "auto"}).s3_chunk_rows == 0
    assert Settings.from_env({"S3_CHUNK_ROWS": "500"}).s3_chunk_rows == 500
    with pytest.raises(SettingsError, match="S3_CHUNK_ROWS=0 must be at least 1"):
        Settings.from_env({"S3_CHUNK_ROWS": "0"})

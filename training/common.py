"""What every reference model's training shares: seeding, and the bundle handed to the export."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from handler.core.preprocessing import Preprocessor


def seed_everything(seed: int) -> None:
    """Same seed, same weights: retraining reproduces the committed golden outputs on this machine."""
    import keras
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass
class Trained:
    """A trained reference model and everything `export_model` takes for it."""

    name: str
    version: str
    description: str
    model: Any
    sample_requests: dict[str, Any]
    preprocessor: Preprocessor | None = None
    # Per sample request, what the training pipeline computed (required with a numpy preprocessor).
    expected: dict[str, Any] | None = None
    custom_object_modules: tuple[str, ...] | None = None
    # The raw training features as a client sends them: export describes them in baseline.json.
    training_data: dict[str, Any] | None = None
    # Held-out rows (raw features, as training_data) and their true labels: export writes quality_baseline.json.
    validation_data: tuple[dict[str, Any], Any] | None = None
    # Held-out raw features (no labels): the drift thresholds are calibrated on windows of them (baseline.json).
    holdout_data: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fit(model: Any, x: Any, y: Any, epochs: int, loss: Any, batch_size: int = 64) -> None:
    """Compile and fit quietly: reference models train in seconds."""
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)

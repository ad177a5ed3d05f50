"""What the training pipeline answers for churn rows: the reference for outputs the tests do not have goldens for.

Rows are put into training-order columns here (never through the server's coercion), transformed
with the fitted preprocessing (the training pipeline's own step) and run through the Keras model
loaded by Keras itself, with `model.predict`, as the training script does.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from handler.core.preprocessing import Preprocessor
from tests.support.zoo import model_dir
from training.churn_data import CATEGORICAL_FEATURES, COLUMNS


@functools.cache
def _churn() -> tuple[Any, Preprocessor]:
    import keras

    import handler.custom_objects  # noqa: F401  (the model's Temperature layer)

    folder = model_dir("churn")
    model = keras.saving.load_model(folder / "model.keras", compile=False)
    return model, Preprocessor.load(folder / "preprocessing.json")


def churn_reference(rows: list[dict[str, Any]]) -> np.ndarray:
    """model.predict on the rows' training-order columns: [n, 1] probabilities."""
    model, pre = _churn()
    columns = {
        c: np.array([r[c] for r in rows], dtype=object if c in CATEGORICAL_FEATURES else np.float64) for c in COLUMNS
    }
    return np.asarray(model.predict(pre.transform(columns), verbose=0, batch_size=4096))

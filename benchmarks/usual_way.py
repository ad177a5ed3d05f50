"""The usual way, for comparison: the SAM TensorFlow template's pattern.

The model is loaded at import (during Lambda's init) and every request calls `model.predict`.
It gets skewless' preprocessing so that only the serving mechanics differ.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np

import handler.custom_objects  # noqa: F401  (the model's custom layer)
from handler.core.preprocessing import CategoricalFeature, Preprocessor
from handler.settings import DEFAULT_MODEL_DIR

MODEL_DIR = os.environ.get("MODEL_DIR", str(DEFAULT_MODEL_DIR))
model = keras.models.load_model(os.path.join(MODEL_DIR, "model.keras"), compile=False)
pre = Preprocessor.load(DEFAULT_MODEL_DIR.__class__(MODEL_DIR) / "preprocessing.json")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rows = json.loads(event["body"])["instances"]
    columns = {
        f.name: np.asarray([r[f.name] for r in rows], dtype=object if isinstance(f, CategoricalFeature) else float)
        for f in pre.features
    }
    predictions = model.predict(pre.transform(columns), verbose=0)
    return {"statusCode": 200, "body": json.dumps({"predictions": predictions.tolist()})}

"""Train the reference `churn` model and export it with `handler.export.export_model`.

python -m training.train [--out model_artifacts] [--seed 42]
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from handler.export import export_model
from handler.preprocessing import Preprocessor
from training import data
from training.samples import sample_requests

MODEL_NAME = "churn"
MODEL_VERSION = "1"
TEMPERATURE = 1.7


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(n_inputs: int, temperature: float = TEMPERATURE) -> Any:
    import keras

    from handler.custom_objects import Temperature

    inputs = keras.Input(shape=(n_inputs,), name="features")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    logits = keras.layers.Dense(1, name="logit")(x)
    scaled = Temperature(temperature, name="temperature")(logits)
    outputs = keras.layers.Activation("sigmoid", name="churn_probability")(scaled)
    return keras.Model(inputs, outputs, name=MODEL_NAME)


def train(seed: int = 42, n_train: int = 6000, epochs: int = 12) -> tuple[Any, Preprocessor, dict[str, np.ndarray]]:
    """Generate data, fit the preprocessing on it, train; return model, preprocessor, held-out columns."""
    _seed_everything(seed)
    columns, labels = data.generate(n_train, seed)
    pre = Preprocessor.fit(columns, data.NUMERIC_FEATURES, data.CATEGORICAL_FEATURES, order=data.COLUMNS)  # type: ignore[arg-type]
    x = pre.transform(columns)
    model = build_model(pre.output_width)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    held_out, _ = data.generate(400, seed + 1)
    return model, pre, held_out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("model_artifacts"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    model, pre, held_out = train(args.seed)
    manifest = export_model(
        model,
        pre,
        sample_requests(held_out),
        args.out,
        name=MODEL_NAME,
        version=MODEL_VERSION,
        description=f"Reference customer-churn classifier trained on synthetic data (seed {args.seed})",
    )
    print(f"exported {manifest['model']['name']} v{manifest['model']['version']} to {args.out}")


if __name__ == "__main__":
    main()

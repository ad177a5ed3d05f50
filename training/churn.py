"""`churn`: a tabular classifier behind the numpy `Preprocessor` (standardize, minmax, one-hot).

Numeric features on very different scales and categorical ones, so that serving without the
fitted preprocessing gives visibly wrong answers; a registered custom layer (`Temperature`)
whose constructor argument changes every output.
"""

from __future__ import annotations

from typing import Any

from handler.core.preprocessing import Preprocessor
from training import churn_data as data
from training.churn_samples import sample_cases, training_columns
from training.common import Trained, fit, seed_everything

NAME = "churn"
VERSION = "1"
TEMPERATURE = 1.7
# quality_baseline.json's held-out customers: 4,000 rows of a seed training never draws (it draws `seed` and
# `seed + 1`), labelled by the generator itself, as tests/monitoring/test_quality_evidence.py's baseline is.
VALIDATION_SEED = 5000
VALIDATION_ROWS = 4000


def build_model(n_inputs: int, temperature: float = TEMPERATURE) -> Any:
    import keras

    from handler.custom_objects import Temperature

    inputs = keras.Input(shape=(n_inputs,), name="features")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    logits = keras.layers.Dense(1, name="logit")(x)
    scaled = Temperature(temperature, name="temperature")(logits)
    outputs = keras.layers.Activation("sigmoid", name="churn_probability")(scaled)
    return keras.Model(inputs, outputs, name=NAME)


def train(seed: int = 42, n_train: int = 6000, epochs: int = 12) -> Trained:
    """Generate data, fit the preprocessing on it, train; the golden answers come from the training pipeline."""
    if VALIDATION_SEED in (seed, seed + 1):
        raise ValueError(f"seed {seed}: training would draw the validation rows (seed {VALIDATION_SEED}); pick another")
    seed_everything(seed)
    columns, labels = data.generate(n_train, seed)
    pre = Preprocessor.fit(columns, data.NUMERIC_FEATURES, data.CATEGORICAL_FEATURES, order=data.COLUMNS)  # type: ignore[arg-type]
    model = build_model(pre.output_width)
    fit(model, pre.transform(columns), labels, epochs, "binary_crossentropy")
    held_out, _ = data.generate(400, seed + 1)
    cases = sample_cases(held_out)
    expected = {
        name: model.predict(pre.transform(training_columns(rows)), verbose=0) for name, (_, rows) in cases.items()
    }
    return Trained(
        name=NAME,
        version=VERSION,
        description=f"Reference customer-churn classifier trained on synthetic data (seed {seed})",
        model=model,
        sample_requests={name: body for name, (body, _) in cases.items()},
        preprocessor=pre,
        expected=expected,
        custom_object_modules=("handler.custom_objects",),
        training_data=columns,
        validation_data=data.generate(VALIDATION_ROWS, VALIDATION_SEED),
    )

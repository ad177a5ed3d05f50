"""`sensor`: a [20, 3] sequence of readings through an LSTM; the answer, the probability of a fault.

The LSTM is built with `unroll=True`: over a dynamic batch, an LSTM's TensorList ops do not
lower to LiteRT, and unrolled over 20 fixed steps it converts (and matches TensorFlow).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.common import Trained, fit, seed_everything

NAME = "sensor"
VERSION = "1"
STEPS = 20
CHANNELS = 3
NOISE = 0.15  # the readings' noise (std) around their sines


def generate(n: int, seed: int, offset: float = 0.0, noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """n sequences [n, 20, 3] (float32) of three noisy sines; a fault adds a drift and a spike.

    `offset` and `noise` change the readings the drift watch's evidence serves (the same draws, scaled).
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, STEPS)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, CHANNELS))
    x = np.sin(t[None, :, None] * np.array([1.0, 2.0, 0.5]) + phase) + rng.normal(0, noise, (n, STEPS, CHANNELS))
    fault = rng.integers(0, 2, n)
    drift = np.linspace(0, 1.5, STEPS)[None, :, None] * fault[:, None, None] * rng.uniform(0.5, 1.0, (n, 1, CHANNELS))
    spike_at = rng.integers(0, STEPS, n)
    x = x + drift
    x[np.arange(n), spike_at, 0] += 2.5 * fault
    return (x + offset).astype(np.float32), fault


def build_model(unroll: bool = True) -> Any:
    import keras

    readings = keras.Input(shape=(STEPS, CHANNELS), dtype="float32", name="readings")
    x = keras.layers.LSTM(16, unroll=unroll)(readings)
    fault = keras.layers.Dense(1, activation="sigmoid", name="fault")(x)
    return keras.Model(readings, fault, name=NAME)


def sample_requests(x: np.ndarray) -> dict[str, Any]:
    it = iter(x)
    return {
        "one_sequence": {"instances": [next(it).tolist()]},
        "one_sequence_named": {"instances": [{"readings": next(it).tolist()}]},
        "columnar_batch_of_3": {"inputs": {"readings": [next(it).tolist() for _ in range(3)]}},
        "one_sequence_no_batch_axis": {"inputs": next(it).tolist()},
        "flat_line": {"instances": [np.zeros((STEPS, CHANNELS)).tolist()]},
        "batch_of_16": {"instances": [next(it).tolist() for _ in range(16)]},
    }


def train(seed: int = 42, n_train: int = 3000, epochs: int = 4) -> Trained:
    seed_everything(seed)
    x, y = generate(n_train, seed)
    model = build_model()
    fit(model, x, y, epochs, "binary_crossentropy")
    held_out, _ = generate(32, seed + 1)
    return Trained(
        name=NAME,
        version=VERSION,
        description=f"Reference sequence model: an LSTM over [20, 3] readings, unrolled (synthetic, seed {seed})",
        model=model,
        sample_requests=sample_requests(held_out),
        training_data={"readings": x},
        holdout_data={"readings": generate(n_train, seed + 2)[0]},
    )

"""`recommender`: two named inputs (a float vector, an int id into an `Embedding`), two named outputs.

The answer per instance is an object: `click_probability` and `relevance_score`. An id outside
the `Embedding`'s range is refused by the server (the export records the range), not a 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.common import Trained, seed_everything

NAME = "recommender"
VERSION = "1"
ITEMS = 200
USER_FEATURES = 6


def generate(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    user = rng.normal(0, 1, (n, USER_FEATURES)).astype(np.float32)
    item = rng.integers(0, ITEMS, n).astype(np.int32)
    item_vectors = np.random.default_rng(seed + 1000).normal(0, 1, (ITEMS, USER_FEATURES))
    affinity = np.sum(user * item_vectors[item], axis=1) / np.sqrt(USER_FEATURES)
    clicked = (rng.uniform(size=n) < 1 / (1 + np.exp(-2 * affinity))).astype(np.float32)
    relevance = (affinity + rng.normal(0, 0.1, n)).astype(np.float32)
    return {"user_features": user, "item_id": item}, {"click_probability": clicked, "relevance_score": relevance}


def build_model() -> Any:
    import keras

    user = keras.Input(shape=(USER_FEATURES,), dtype="float32", name="user_features")
    item = keras.Input(shape=(), dtype="int32", name="item_id")
    item_vector = keras.layers.Embedding(ITEMS, 8)(item)
    x = keras.layers.Concatenate()([user, item_vector])
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(
        {"user_features": user, "item_id": item},
        {
            "click_probability": keras.layers.Dense(1, activation="sigmoid", name="click")(x),
            "relevance_score": keras.layers.Dense(1, name="relevance")(x),
        },
        name=NAME,
    )


def sample_requests(cols: dict[str, np.ndarray]) -> dict[str, Any]:
    rows = [
        {"user_features": cols["user_features"][i], "item_id": cols["item_id"][i]} for i in range(len(cols["item_id"]))
    ]
    it = iter(rows)
    batch = [next(it) for _ in range(4)]
    one = next(it)
    return {
        "one_pair_numpy_values": {"instances": [next(it)]},  # numpy scalars and arrays, as training holds them
        "keys_reversed": {
            "instances": [
                {"item_id": int(r["item_id"]), "user_features": r["user_features"].tolist()} for r in [next(it)]
            ]
        },
        "first_and_last_item": {"instances": [{**next(it), "item_id": 0}, {**next(it), "item_id": ITEMS - 1}]},
        "item_id_as_float": {"instances": [{**next(it), "item_id": 17.0}]},
        "columnar_batch_of_4": {"inputs": {k: [r[k] for r in batch] for k in ("user_features", "item_id")}},
        "columnar_one_pair_no_batch_axis": {"inputs": one},
        "batch_of_16": {"instances": [next(it) for _ in range(16)]},
    }


def train(seed: int = 42, n_train: int = 6000, epochs: int = 4) -> Trained:
    seed_everything(seed)
    cols, targets = generate(n_train, seed)
    model = build_model()
    model.compile(optimizer="adam", loss={"click_probability": "binary_crossentropy", "relevance_score": "mse"})
    model.fit(cols, targets, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    held_out, _ = generate(64, seed + 1)
    return Trained(
        name=NAME,
        version=VERSION,
        description=f"Reference recommender: two named inputs and outputs, an Embedding (synthetic, seed {seed})",
        model=model,
        sample_requests=sample_requests(held_out),
        training_data=cols,
        holdout_data=generate(n_train, seed + 2)[0],
    )

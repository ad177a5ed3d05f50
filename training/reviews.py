"""`reviews`: a string input and a numeric one, both preprocessed in the graph.

`words` is a review cut into up to 8 lower-case words, padded with "", through a `StringLookup`
adapted on the training words, an `Embedding` and an average; `review_length` (characters)
through an adapted `Normalization`. The answer: the probability that the review is positive.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from training.common import Trained, fit, seed_everything

NAME = "reviews"
VERSION = "1"
WORDS = 8
POSITIVE = ["great", "excellent", "love", "perfect", "happy", "recommend", "works", "fast"]
NEGATIVE = ["broken", "terrible", "refund", "slow", "awful", "disappointed", "waste", "late"]
NEUTRAL = ["the", "it", "product", "delivery", "box", "was", "and", "very", "item", "price"]


def generate(n: int, seed: int, positive_words: list[str] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """n reviews: `words` [n, 8] str and `review_length` [n, 1] float32, with their labels."""
    rng = np.random.default_rng(seed)
    good = positive_words or POSITIVE
    labels = rng.integers(0, 2, n)
    words = np.full((n, WORDS), "", dtype=object)
    for i in range(n):
        k = int(rng.integers(3, WORDS + 1))
        own = good if labels[i] else NEGATIVE
        other = NEGATIVE if labels[i] else good
        pool = [*rng.choice(own, 2), *rng.choice(NEUTRAL, k - 3), *rng.choice(own + other, 1)]
        rng.shuffle(pool)
        words[i, :k] = pool
    length = np.array([[sum(len(w) + 1 for w in row if w) + rng.normal(40, 15)] for row in words], dtype=np.float32)
    return {"words": words, "review_length": np.maximum(length, 1.0)}, labels


def build_model(train_words: np.ndarray, train_length: np.ndarray) -> Any:
    import keras

    words = keras.Input(shape=(WORDS,), dtype="string", name="words")
    length = keras.Input(shape=(1,), dtype="float32", name="review_length")
    lookup = keras.layers.StringLookup(mask_token="")
    lookup.adapt(train_words.reshape(-1))
    norm = keras.layers.Normalization()
    norm.adapt(train_length)
    bag = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(lookup.vocabulary_size(), 8)(lookup(words)))
    x = keras.layers.Concatenate()([bag, norm(length)])
    x = keras.layers.Dense(16, activation="relu")(x)
    positive = keras.layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model({"words": words, "review_length": length}, positive, name=NAME)


def _row(cols: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {"words": list(cols["words"][i]), "review_length": [float(cols["review_length"][i, 0])]}


def sample_requests(cols: dict[str, np.ndarray]) -> dict[str, Any]:
    rows = [_row(cols, i) for i in range(len(cols["words"]))]
    it = iter(rows)
    unseen = next(it)
    unseen["words"] = ["unheardof", "zxqv", *unseen["words"][2:]]
    b64 = next(it)
    b64["words"] = [{"b64": base64.b64encode(w.encode()).decode()} for w in b64["words"]]
    batch = [next(it) for _ in range(5)]
    one = next(it)
    return {
        "one_review": {"instances": [next(it)]},
        "keys_reversed": {"instances": [dict(reversed(list(next(it).items())))]},
        "unseen_words": {"instances": [unseen]},
        "words_as_b64": {"instances": [b64]},
        "all_padding": {"instances": [{"words": [""] * WORDS, "review_length": [1.0]}]},
        "length_as_int": {"instances": [{**next(it), "review_length": [120]}]},
        "columnar_batch_of_5": {"inputs": {k: [r[k] for r in batch] for k in ("words", "review_length")}},
        "columnar_one_review_no_batch_axis": {"inputs": one},
        "batch_of_20": {"instances": [next(it) for _ in range(20)]},
    }


def train(seed: int = 42, n_train: int = 4000, epochs: int = 4) -> Trained:
    seed_everything(seed)
    cols, labels = generate(n_train, seed)
    model = build_model(cols["words"], cols["review_length"])
    import tensorflow as tf

    fit(model, {k: tf.constant(v) for k, v in cols.items()}, labels, epochs, "binary_crossentropy")
    held_out, _ = generate(64, seed + 1)
    return Trained(
        name=NAME,
        version=VERSION,
        description=f"Reference text model: StringLookup and Normalization in the graph (synthetic, seed {seed})",
        model=model,
        sample_requests=sample_requests(held_out),
        training_data=cols,
        holdout_data=generate(n_train, seed + 2)[0],
    )

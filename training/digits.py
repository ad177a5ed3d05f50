"""`digits`: uint8 28×28×1 images, `Rescaling` in the graph, a small Conv2D net, softmax over 10.

The images are drawn here from a seed: class k is a bright stroke pattern of its own (bars and
blocks at class-specific places) with noise, so a small net learns it in seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.common import Trained, fit, seed_everything

NAME = "digits"
VERSION = "1"
SIZE = 28
CLASSES = 10


def _stroke(k: int) -> np.ndarray:
    """The clean pattern of class k, as floats in [0, 1]."""
    img = np.zeros((SIZE, SIZE), dtype=np.float64)
    row, col = divmod(k, 4)
    img[3 + 8 * row : 9 + 8 * row, 2 + 6 * col : 8 + 6 * col] = 1.0  # a block at a class-specific place
    if k % 2:
        img[:, SIZE // 2 - 1 : SIZE // 2 + 1] = 0.6  # odd classes: a vertical bar
    if k >= 5:
        img[SIZE - 5 : SIZE - 3, :] = 0.8  # upper half: a bar at the bottom
    return img


def generate(n: int, seed: int, brightness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n images (uint8, [n, 28, 28, 1]) and their labels; `brightness` scales them (for drift tests)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    clean = np.stack([_stroke(int(k)) for k in labels])
    shift = rng.integers(-1, 2, (n, 2))
    for i in range(n):
        clean[i] = np.roll(clean[i], tuple(shift[i]), axis=(0, 1))
    noisy = np.clip(clean * rng.uniform(0.7, 1.0, (n, 1, 1)) + rng.normal(0, 0.08, clean.shape), 0, 1)
    images = np.round(np.clip(noisy * 255 * brightness, 0, 255)).astype(np.uint8)
    return images[..., None], labels


def build_model() -> Any:
    import keras

    image = keras.Input(shape=(SIZE, SIZE, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255)(image)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    probabilities = keras.layers.Dense(CLASSES, activation="softmax", name="digit")(x)
    return keras.Model(image, probabilities, name=NAME)


def sample_requests(images: np.ndarray) -> dict[str, Any]:
    """Images as clients send them: nested lists of ints, with and without names and the batch axis."""
    it = iter(images)
    s: dict[str, Any] = {
        "one_image_row": {"instances": [next(it)]},  # numpy in, as a training script holds it
        "one_image_named_row": {"instances": [{"image": next(it).tolist()}]},
        "batch_of_4_rows": {"instances": [next(it).tolist() for _ in range(4)]},
        "columnar_batch_of_3": {"inputs": {"image": [next(it).tolist() for _ in range(3)]}},
        "columnar_one_image_no_batch_axis": {"inputs": {"image": next(it).tolist()}},
        "bare_one_image_no_batch_axis": {"inputs": next(it).tolist()},
        "integers_sent_as_floats": {"instances": [next(it).astype(float).tolist()]},
        "all_black_and_all_white": {
            "instances": [np.zeros((SIZE, SIZE, 1), int).tolist(), np.full((SIZE, SIZE, 1), 255).tolist()]
        },
        "batch_of_8": {"instances": [next(it).tolist() for _ in range(8)]},
    }
    return s


def train(seed: int = 42, n_train: int = 4000, epochs: int = 3) -> Trained:
    seed_everything(seed)
    images, labels = generate(n_train, seed)
    model = build_model()
    fit(model, images, labels, epochs, "sparse_categorical_crossentropy")
    held_out, _ = generate(64, seed + 1)
    return Trained(
        name=NAME,
        version=VERSION,
        description=f"Reference image classifier: uint8 28x28x1, Rescaling in the graph (synthetic, seed {seed})",
        model=model,
        sample_requests=sample_requests(held_out),
        training_data={"image": images},
        holdout_data={"image": generate(n_train, seed + 2)[0]},
    )

"""A model LiteRT cannot take is told what to do, naming its own layers; TensorFlow serves it meanwhile.

Each model is written here and exported into tmp_path. References: `model.predict` on arrays built here,
and the hints' words written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handler.bootstrap import open_service
from handler.export import export_model
from handler.export.litert import conversion_cause
from handler.settings import Settings

pytestmark = pytest.mark.slow


def _image_layers(seed: int) -> tuple[Any, Any, Any]:
    keras.utils.set_random_seed(seed)
    return keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)


def test_augmentation_layers_are_named_with_the_advice_to_leave_them_out_of_the_served_model(tmp_path: Path) -> None:
    conv, pool, dense = _image_layers(8)
    augmentation = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", name="flip"),
            keras.layers.RandomRotation(0.1, name="rotate"),
            keras.layers.RandomZoom(0.1, name="zoom"),
            keras.layers.RandomContrast(0.2, name="contrast"),
        ],
        name="augmentation",
    )
    image = keras.Input(shape=(12, 12, 3), name="image")
    model = keras.Model(image, dense(pool(conv(keras.layers.Rescaling(1 / 255)(augmentation(image))))))
    pixels = np.random.default_rng(8).integers(0, 256, size=(2, 12, 12, 3)).astype(np.float32)
    samples = {"two_images": {"instances": pixels.tolist()}}
    manifest = export_model(model, None, samples, tmp_path / "augmented", name="img", version="1")

    litert = manifest["runtimes"]["litert"]
    assert litert["golden_passed"] is False and litert["reason"].startswith("conversion failed: ")
    assert (
        "the model holds data augmentation layers (RandomFlip 'flip', RandomRotation 'rotate', RandomZoom 'zoom', "
        "RandomContrast 'contrast'): they do nothing at inference" in litert["reason"]
    ), litert["reason"]
    assert "Leave the augmentation out of the served model" in litert["reason"]
    service = open_service(Settings(model_dir=tmp_path / "augmented"))  # auto: TensorFlow, which has the ops
    assert service.runtime == "tensorflow"
    np.testing.assert_allclose(
        service.predict_v1(samples["two_images"])["predictions"], model.predict(pixels, verbose=0), rtol=1e-5, atol=1e-6
    )

    # The advice taken: the same trained layers, without the augmentation, convert and answer alike.
    served = keras.Model(image, dense(pool(conv(keras.layers.Rescaling(1 / 255)(image)))))
    manifest = export_model(served, None, samples, tmp_path / "served", name="img", version="1")
    assert manifest["runtimes"]["litert"]["golden_passed"] is True, manifest["runtimes"]["litert"]
    np.testing.assert_allclose(served.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-6)


def test_a_rolled_gru_over_any_length_is_named_with_its_fix(tmp_path: Path) -> None:
    keras.utils.set_random_seed(9)
    steps = keras.Input(shape=(None, 3), name="steps")
    model = keras.Model(steps, keras.layers.Dense(1)(keras.layers.GRU(4, name="encoder")(steps)))
    rng = np.random.default_rng(9)
    samples = {
        "five_steps": {"instances": rng.normal(size=(1, 5, 3)).tolist()},
        "two": {"instances": rng.normal(size=(2, 7, 3)).tolist()},
    }
    manifest = export_model(model, None, samples, tmp_path / "gru", name="gru", version="1")
    reason = manifest["runtimes"]["litert"]["reason"]
    assert "TensorList" in reason.split(" | ")[0], reason
    assert (
        "(hint: a rolled recurrent layer does not lower to LiteRT ops (TensorList): GRU 'encoder' runs rolled over "
        "sequences of any length (an Input of shape (None, ...)): give the sequence a fixed length and build the "
        "layer with unroll=True, or serve the model on TensorFlow (SERVING_RUNTIME=auto does so when LiteRT fails))"
    ) in reason, reason
    service = open_service(Settings(model_dir=tmp_path / "gru"))
    assert service.runtime == "tensorflow"
    x = np.array(samples["two"]["instances"], dtype=np.float32)
    np.testing.assert_allclose(
        service.predict_v1(samples["two"])["predictions"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_a_rolled_lstm_over_a_fixed_length_is_told_to_unroll(tmp_path: Path) -> None:
    keras.utils.set_random_seed(10)
    seq = keras.Input(shape=(6, 2), name="seq")
    model = keras.Model(seq, keras.layers.Dense(1)(keras.layers.LSTM(3, name="lstm_six")(seq)))
    samples = {"one": {"instances": np.random.default_rng(10).normal(size=(1, 6, 2)).tolist()}}
    reason = export_model(model, None, samples, tmp_path / "lstm", name="lstm", version="1")["runtimes"]["litert"][
        "reason"
    ]
    assert (
        "LSTM 'lstm_six' runs rolled over 6 steps: build it with unroll=True, or serve the model on TensorFlow"
        in reason
    )


def test_without_the_model_a_tensorlist_failure_keeps_the_general_hint() -> None:
    error = RuntimeError("x.py:1: error: loc(fused[\"a\"]): 'tf.TensorListReserve' op requires element_shape")
    assert conversion_cause(error) == (
        "'tf.TensorListReserve' op requires element_shape (hint: a recurrent layer (LSTM, GRU) over a dynamic batch "
        "does not lower to LiteRT ops: build it with unroll=True (fine for short, fixed-length sequences))"
    )

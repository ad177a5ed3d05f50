"""Custom Keras objects the served models use, registered so `safe_mode` loading finds them.

Training imports its layers from here and serving imports this module before loading: one
definition, two users. Add yours below, each with every constructor argument in `get_config()`.
"""

from __future__ import annotations

from typing import Any

import keras

PACKAGE = "skewless"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Temperature(keras.layers.Layer):
    """Divides logits by a fixed temperature (calibration); the argument changes every output."""

    def __init__(self, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def call(self, inputs: Any) -> Any:
        return inputs / self.temperature

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}

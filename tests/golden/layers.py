"""Custom layers of a user's own module (not handler/custom_objects.py), for the export and loading tests.

Importable by name as `tests.golden.layers`: that is what CUSTOM_OBJECT_MODULES names.
"""

from __future__ import annotations

from typing import Any

import keras

MODULE = __name__
PACKAGE = "skewless-tests"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulScale(keras.layers.Layer):
    """Multiplies by `factor`, but get_config() forgets it: the classic trap (it reloads with factor=1)."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return super().get_config()  # overriding turns off Keras' automatic config: 'factor' is lost


@keras.saving.register_keras_serializable(package=PACKAGE)
class CarefulScale(ForgetfulScale):
    """The same layer with a complete get_config()."""

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


class UnregisteredScale(CarefulScale):
    """Complete, but never registered: safe-mode loading cannot find it."""

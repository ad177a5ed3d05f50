"""A user's own project, outside this repository: a module of custom Keras code, a saved model, its requests.

Nothing here is ours: a subclassed model with a custom layer, both registered in the user's module with a
complete get_config(), wrapped in a functional model (a subclassed model has no defined inputs of its own),
saved as a `.keras` file. What training answers is `model.predict` on arrays built here, never the server.
The module logs each import's file to $SKEWLESS_USER_IMPORT_LOG, so a test sees where the served code came from.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

IMPORT_LOG_VARIABLE = "SKEWLESS_USER_IMPORT_LOG"

MODULE_SOURCE = '''"""The user's custom Keras code: a layer and a subclassed model."""

import os
from typing import Any

import keras

if os.environ.get("SKEWLESS_USER_IMPORT_LOG"):
    with open(os.environ["SKEWLESS_USER_IMPORT_LOG"], "a") as log:
        log.write(__file__ + "\\n")


@keras.saving.register_keras_serializable(package="skewless-user")
class Shift(keras.layers.Layer):
    """Adds `offset` then scales by `factor`: both arguments change every output."""

    def __init__(self, offset: float = 0.0, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = offset
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return (inputs + self.offset) * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "offset": self.offset, "factor": self.factor}


@keras.saving.register_keras_serializable(package="skewless-user")
class Scorer(keras.Model):
    """Two dense layers with the custom layer between them."""

    def __init__(self, units: int = 8, offset: float = 0.5, factor: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.offset, self.factor = units, offset, factor
        self.hidden = keras.layers.Dense(units, activation="tanh")
        self.shift = Shift(offset, factor)
        self.head = keras.layers.Dense(2)

    def call(self, inputs: Any) -> Any:
        return self.head(self.shift(self.hidden(inputs)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "offset": self.offset, "factor": self.factor}
'''


@dataclass(frozen=True)
class UserProject:
    folder: Path  # the user's folder: the export runs from here
    module: str
    model_file: Path
    requests_file: Path
    expected_file: Path
    requests: dict[str, Any]
    expected: dict[str, np.ndarray]  # model.predict on the arrays each request was built from


def load_module(folder: Path, name: str) -> ModuleType:
    """Import folder/<name>.py as `name` (fresh, each call), as the user's script imports it; sys.path unchanged."""
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def squared_error(y_true: Any, y_pred: Any) -> Any:
    """A loss of the training script's own, registered nowhere: only compile=True loading would need it."""
    import keras

    return keras.ops.mean((y_true - y_pred) ** 2)


def write_project(
    folder: Path, module: str = "user_layers", suffix: str = ".keras", compiled: bool = False
) -> UserProject:
    """The module, the model (`compiled`: with a loss of its own) saved, the requests and training's answers."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(MODULE_SOURCE)
    code = load_module(folder, module)
    inputs = keras.Input(shape=(4,), name="features")
    model = keras.Model(inputs, code.Scorer(units=8, offset=0.5, factor=3.0)(inputs))
    if compiled:
        model.compile(optimizer="adam", loss=squared_error)
    rng = np.random.default_rng(22)
    rows = {"three_rows": rng.normal(size=(3, 4)), "one_row": rng.normal(size=(1, 4))}
    arrays = {case: values.astype("float32") for case, values in rows.items()}
    requests = {case: {"instances": values.tolist()} for case, values in arrays.items()}
    expected = {case: np.asarray(model.predict(values, verbose=0)) for case, values in arrays.items()}
    model_file = folder / f"scorer{suffix}"
    model.save(model_file)
    requests_file = folder / "requests.json"
    requests_file.write_text(json.dumps(requests))
    expected_file = folder / "expected.json"
    expected_file.write_text(json.dumps({case: a.tolist() for case, a in expected.items()}))
    return UserProject(folder, module, model_file, requests_file, expected_file, requests, expected)


def fresh_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that could name the user's module or another model."""
    dropped = ("PYTHONPATH", "CUSTOM_OBJECT_MODULES", "MODEL_DIR", "MODEL_S3_URI", "MODEL_DIGEST", IMPORT_LOG_VARIABLE)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "POWERTOOLS_TRACE_DISABLED": "true", **extra}


def assert_predictions(body: Any, expected: np.ndarray, where: str) -> None:
    """A v1 answer ({"predictions": rows}) equals training's, within the golden tolerance."""
    assert isinstance(body, dict) and "predictions" in body, f"{where}: not a v1 answer: {body!r:.500}"
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-5, atol=1e-5, err_msg=where)

"""One `Function` per (model, runtime), built once per test session and shared by tests/triggers/http and tests/hostile.

Building a Function is cheap (the model loads lazily); the first prediction loads the model, which takes a
few seconds on TensorFlow. Both directories import this module as `tests.support.functions`, so one session
builds each function once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from handler.app import Function
from handler.settings import Settings
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.http_events import http_event

RUNTIMES = ("tensorflow", "litert")
# The error a failed direct invoke raises, by the status in its body (README, "Direct invoke").
DIRECT_ERROR_TYPES = {400: "InvalidInput", 413: "InvalidInput", 422: "InvalidInput", 500: "InternalError"}
DIRECT_ERROR_TYPES[503] = "ModelUnavailable"
Handler = Callable[[Any, Any], Any]


class Functions:
    """Functions by (model, runtime), each built on first use with the defaults of Settings otherwise."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str], Function] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}

    def get(self, model: str, runtime: str = "tensorflow") -> Function:
        key = (model, runtime)
        if key not in self._built:
            function = Function(Settings(model_dir=zoo.model_dir(model), serving_runtime=runtime))
            assert function.service is not None, f"{model} on {runtime} did not start: {function.startup_error}"
            assert function.service.runtime == runtime, (model, runtime, function.service.runtime)
            self._built[key] = function
        return self._built[key]

    def handler(self, model: str, runtime: str = "tensorflow") -> Handler:
        """The function's `lambda_handler` (Powertools logger, metrics and trigger detection around it)."""
        key = (model, runtime)
        if key not in self._handlers:
            self._handlers[key] = self.get(model, runtime).handler()
        return self._handlers[key]

    def http(
        self,
        model: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        runtime: str = "tensorflow",
        trigger: str = "http",
        headers: dict[str, str] | None = None,
        base64_body: bool = False,
    ) -> dict[str, Any]:
        """One HTTP request to the model's function, as `trigger` sends it; `body` str is sent as is."""
        event = http_event(trigger, method, path, body, headers=headers, base64_body=base64_body)
        response: dict[str, Any] = self.handler(model, runtime)(event, LambdaContext())
        return response

    def direct(self, model: str, event: Any, *, runtime: str = "tensorflow") -> Any:
        """A direct invoke: the event is the v1 body, the result what Lambda returns to the caller.

        A request that cannot be answered fails the invocation (DIRECT_ERRORS=raise): see `direct_error`.
        """
        return self.handler(model, runtime)(event, LambdaContext())

    def direct_error(self, model: str, event: Any, *, runtime: str = "tensorflow") -> tuple[str, dict[str, Any]]:
        """A direct invoke that must fail: the raised error's type name and the JSON error body it carries."""
        try:
            answer = self.direct(model, event, runtime=runtime)
        except Exception as exc:  # the typed errors of handler.triggers.direct
            body: dict[str, Any] = json.loads(str(exc))
            return type(exc).__name__, body
        raise AssertionError(f"the invocation did not fail: it answered {answer!r:.300}")


FUNCTIONS = Functions()


def predict_path(model: str) -> str:
    return f"/v1/models/{model}:predict"


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


@pytest.fixture(scope="session")
def app() -> ModuleType:
    """The app module, built once, as one Lambda container would."""
    import handler.app

    return handler.app


@pytest.fixture(scope="session")
def functions() -> Functions:
    """One Function per (model, runtime) of the reference models, built once per session."""
    return FUNCTIONS

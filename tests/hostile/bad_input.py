"""What a catalogue entry is: one named bad request, and exactly what it must be answered with."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The error code of each status class, as the README and DESIGN.md define them (written out, not imported).
CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_input",
}
# Values planted in bad requests: none may come back in an answer or a log line.
SECRET_TEXT = "s3cr3t-c4tegory-value"
SECRET_NUMBER = 7391.0417
SECRET_INT = 73910417

Detail = tuple[int | None, str | None]


@dataclass(frozen=True)
class BadInput:
    """One named bad request and what it must be answered with.

    `details`, for a 422: exactly the (instance, input) pairs its details must list (None: not pinned).
    `max_bytes`: the answer must be smaller (issue 10: a 422 for a wrong image shape once took 9.5 KB).
    """

    name: str
    status: int
    fragment: str
    body: Callable[[], str | None] = lambda: None
    method: str = "POST"
    # None: the model's v1 predict route.
    path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The body is already base64 text: sent as is, with isBase64Encoded.
    base64: bool = False
    # Planted values the answer must not quote (every answer is also checked for the body's own values).
    secrets: tuple[str, ...] = ()
    model: str = "churn"
    details: tuple[Detail, ...] | None = None
    max_bytes: int | None = None

    @property
    def code(self) -> str:
        return CODES[self.status]

    @property
    def route(self) -> str:
        return self.path or f"/v1/models/{self.model}:predict"


def v1(*rows: Any) -> str:
    return json.dumps({"instances": list(rows)})


def tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def v2(*tensors: dict[str, Any]) -> str:
    return json.dumps({"inputs": list(tensors)})


def infer(model: str) -> str:
    return f"/v2/models/{model}/infer"

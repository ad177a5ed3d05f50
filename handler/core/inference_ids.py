"""Inference ids: one per answered row, `<id>/<row>`, so that a label arriving later finds the row it judges.

The client may name its request (the `X-Inference-Id` header over HTTP, OIP v2's request `id`, SQS's
`request_id`); otherwise the trigger names it after the invocation's request id. A row's id is that name,
a slash and the row's index in the request (for an S3 object, the object's key and the row's number in
the file). The triggers pass the name in: the core knows no event, it only numbers the rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handler.errors import BadRequest

# Long enough for a UUID, an S3 key or a SageMaker inferenceId; short enough that a captured line stays small.
MAX_LENGTH = 1024
HEADER = "X-Inference-Id"
# What an id may not hold: control characters (a line break, a NUL), which would garble logs and files.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RowIds:
    """The inference ids of one batch's rows: `base/<row>`, the rows numbered 0..n-1 or by `rows`."""

    base: str
    rows: Any = None  # each row's number, a sequence or an array (an S3 chunk's file rows); None: 0..n-1

    def row(self, i: int) -> str:
        """The id of the batch's row i."""
        number = i if self.rows is None else int(self.rows[i])
        return f"{self.base}/{number}"

    def of(self, picked: Sequence[int]) -> list[str]:
        """The ids of the batch's rows `picked`, in that order."""
        return [self.row(i) for i in picked]


def client_id(value: object, where: str) -> str | None:
    """A client's own request id, checked (a 400 naming `where` if it cannot be one); None if it sent none."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where} must be a non-empty string")
    if len(value) > MAX_LENGTH:
        raise BadRequest(f"{where} is {len(value)} characters long; an inference id takes at most {MAX_LENGTH}")
    if CONTROL.search(value):
        raise BadRequest(f"{where} holds a control character; an inference id is printable text")
    return value

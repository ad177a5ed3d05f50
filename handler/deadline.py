"""How long an invocation has left, from the Lambda context, and when to stop with a margin in hand.

Jobs that may outlive one invocation (an S3 object, a Map batch) ask before each step; a context without
`get_remaining_time_in_millis` (a test, a local run) never runs out.
"""

from __future__ import annotations

from typing import Any

# Never stop with less in hand than this (seconds): what follows the last step is a few S3 writes or an answer.
MIN_MARGIN_S = 2.0


class Deadline:
    """The context's remaining time against a margin that grows with the slowest step so far."""

    def __init__(self, context: Any) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining = remaining if callable(remaining) else None
        self._slowest = 0.0
        self.chunks = 0

    def seconds_left(self) -> float | None:
        """Seconds before the margin is reached (None: no deadline known)."""
        if self._remaining is None:
            return None
        return self._remaining() / 1000 - max(MIN_MARGIN_S, 3 * self._slowest)

    def time_to_stop(self) -> bool:
        """Stop before the next step? Never before one step is done here: each invocation moves the job on."""
        left = self.seconds_left()
        return left is not None and self.chunks > 0 and left < 0

    def done(self, seconds: float) -> None:
        self.chunks += 1
        self._slowest = max(self._slowest, seconds)

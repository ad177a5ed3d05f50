"""How deep a JSON value may nest: one rule for every place that parses what a client sent.

An HTTP body (`triggers/http/body.py`), a JSON Lines row (`formats/jsonl.py`) and an SQS message
(`triggers/sqs.py`) are all refused past MAX_JSON_DEPTH. Python's parser itself gives up near 1,000
levels with a RecursionError, which is not a refusal but a crash (an S3 file retried forever, an SQS
message dead-lettered without its result); and anything past 32 levels is no request of ours anyway.
"""

from __future__ import annotations

import json
from itertools import chain
from typing import Any

# The deepest a request needs is 5 (an OIP v2 tensor with 2-D nested data); allow room, refuse the absurd.
MAX_JSON_DEPTH = 32

_CONTAINERS = frozenset((list, dict))


class TooDeep(ValueError):
    """A JSON value nested past MAX_JSON_DEPTH (or past what the parser can take)."""

    def __init__(self) -> None:
        super().__init__(f"nested more than {MAX_JSON_DEPTH} levels deep")


def loads(text: str) -> Any:
    """`json.loads`, refusing with TooDeep a value nested past MAX_JSON_DEPTH; other errors are json's own."""
    brackets = text.count("["), text.count("{")
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep() from None
    # Too few arrays and objects to nest too deep: nothing to walk (most rows of a file).
    if sum(brackets) > MAX_JSON_DEPTH and nesting(value, text, brackets)[0] > MAX_JSON_DEPTH:
        raise TooDeep()
    return value


def nesting(value: Any, text: str | None = None, brackets: tuple[int, int] | None = None) -> tuple[int, int]:
    """(nesting depth, members of every object) of a parsed JSON value, one level at a time.

    The per-value work runs in C (`map`, `chain`, `set`): a 32-image batch holds some 50,000 values.
    Given the text it was parsed from (and its counts of '[' and '{', if already made), the walk stops at
    the level where it has met as many arrays and objects as the text has '[' and '{' (each array or object
    has one outside strings, so no container is left below): the last level, often most of the values, is
    never looked at. Stops counting past MAX_JSON_DEPTH (the members are then short, which only sends the
    caller the slow way).
    """
    if type(value) not in _CONTAINERS:
        return 0, 0
    if brackets is None:
        brackets = (text.count("["), text.count("{")) if text is not None else (-1, -1)
    lists_left, dicts_left = brackets
    depth = members = 0
    level, kinds = [value], {type(value)}
    while True:  # every item of `level` is a list or a dict; `kinds` their types
        depth += 1
        if depth > MAX_JSON_DEPTH:
            return depth, members
        if dict in kinds:
            dicts = level if len(kinds) == 1 else [x for x in level if type(x) is dict]
            members += sum(map(len, dicts))
            dicts_left -= len(dicts)
            lists_left -= len(level) - len(dicts)
            items = chain.from_iterable(x.values() if type(x) is dict else x for x in level)
        else:
            lists_left -= len(level)
            items = chain.from_iterable(level)
        if lists_left == 0 and dicts_left == 0:
            return depth, members
        # The types first, in one pass: a last level of numbers is never copied.
        found = set(map(type, items))
        if found.isdisjoint(_CONTAINERS):
            return depth, members
        if dict in kinds:
            items = chain.from_iterable(x.values() if type(x) is dict else x for x in level)
        else:
            items = chain.from_iterable(level)
        level = list(items) if found <= _CONTAINERS else [c for c in items if type(c) in _CONTAINERS]
        kinds = found & _CONTAINERS

"""Bodies for the zoo models' catalogue entries: a golden example of each model, altered in one place."""

from __future__ import annotations

import copy
from typing import Any

from tests.hostile.bad_input import BadInput, infer, tensor, v1, v2
from tests.support import zoo

SMALL = 2048  # "well under 2 KB": a wrong image shape must not list every pixel


def example(model: str) -> dict[str, Any]:
    for case in zoo.cases(model):
        rows = zoo.named_rows(case)
        if rows:
            return copy.deepcopy(rows[0])
    raise AssertionError(f"{model} has no golden case with named rows")


def bad(model: str, **changes: Any) -> str:
    """A batch of two: a golden example, then the same example with `changes`."""
    good = example(model)
    return v1(good, {**copy.deepcopy(good), **changes})


def pixel(value: Any, at: tuple[int, int] = (3, 4)) -> list[Any]:
    image = example("digits")["image"]
    image[at[0]][at[1]][0] = value
    return image


def image(edit: Any) -> Any:
    return edit(example("digits")["image"])


def readings(edit: Any) -> Any:
    return edit(example("sensor")["readings"])


def replaced(seq: list[Any], i: int, value: Any) -> list[Any]:
    seq = copy.deepcopy(seq)
    seq[i] = value
    return seq


def recommender_v2(**tensors: dict[str, Any]) -> str:
    """A recommender v2 body: the golden user features, and the given item_id tensor."""
    features = tensor("user_features", [1, 6], "FP32", example("recommender")["user_features"])
    return v2(features, *tensors.values())


def image_v2(shape: list[int], datatype: str, data: list[Any]) -> str:
    return v2(tensor("image", shape, datatype, data))


def reviews_v2(words: dict[str, Any], length: dict[str, Any] | None = None) -> str:
    return v2(words, length or tensor("review_length", [1, 1], "FP32", [42.0]))


FLAT_IMAGE = [p[0] for r in example("digits")["image"] for p in r]
WORDS = example("reviews")["words"]
READ = ((1, "readings"),)
IMG = ((1, "image"),)
ITEM = ((1, "item_id"),)
UF = ((1, "user_features"),)
WORDS_AT = ((1, "words"),)
LEN_AT = ((1, "review_length"),)

R, D, V, S = "recommender", "digits", "reviews", "sensor"


def e422(model: str, name: str, fragment: str, body: Any, details: Any, *, v2: bool = False, **kw: Any) -> BadInput:
    """A 422 entry of a zoo model: named `<model>_<name>`, on its v1 predict route or (v2=True) its v2 infer route."""
    path = infer(model) if v2 else None
    return BadInput(f"{model}_{name}", 422, fragment, body, model=model, path=path, details=details, **kw)

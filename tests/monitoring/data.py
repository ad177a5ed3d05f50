"""Fresh draws from each reference model's training distribution, and the shifts the drift watch must see.

Every draw comes from the training modules' own generators with seeds training never used, so a
"fresh" window is the training distribution itself, and a shift is one change to it, made here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training import churn_data, digits, recommender, reviews, sensor

ROOT = Path(__file__).resolve().parents[2]
Columns = dict[str, np.ndarray]


def churn(n: int, seed: int) -> Columns:
    return churn_data.generate(n, seed)[0]


def cents(cols: Columns, feature: str = "monthly_charges") -> Columns:
    """An upstream system that starts sending cents instead of dollars for one feature."""
    return {**cols, feature: cols[feature] * 100}


def collapse(cols: Columns, feature: str = "contract_type", value: str = "one_year") -> Columns:
    """One category collapsing to a single value."""
    return {**cols, feature: np.full(len(cols[feature]), value, dtype=object)}


def churn_rows(cols: Columns) -> list[dict[str, Any]]:
    """Rows as a client sends them in JSON."""
    return [churn_data.row(cols, i) for i in range(len(cols["age"]))]


def digit_images(n: int, seed: int, brightness: float = 1.0) -> Columns:
    return {"image": digits.generate(n, seed, brightness=brightness)[0]}


def shifted_digits(n: int, seed: int, pixels: int = 4) -> Columns:
    """Digits drawn `pixels` to the right of where training drew them (a camera or a crop moved): every pixel keeps
    its value, only its place changes (the dark border comes round on the left)."""
    return {"image": np.roll(digits.generate(n, seed)[0], pixels, axis=2)}


def few_digit_classes(n: int, seed: int, classes: int = 5) -> Columns:
    """Digits of the first `classes` classes only (the class mix changed), each image drawn as training drew it."""
    images, labels = digits.generate(n * (digits.CLASSES // classes) + 200, seed)
    return {"image": images[labels < classes][:n]}


def review_words(n: int, seed: int, shifted: bool = False) -> Columns:
    """Reviews; `shifted`: positive reviews use only three of the training's positive words."""
    return reviews.generate(n, seed, positive_words=reviews.POSITIVE[:3] if shifted else None)[0]


def sensor_readings(n: int, seed: int, offset: float = 0.0, noise: float = sensor.NOISE) -> Columns:
    return {"readings": sensor.generate(n, seed, offset=offset, noise=noise)[0]}


def recommender_pairs(n: int, seed: int) -> Columns:
    return recommender.generate(n, seed)[0]


# One id in the middle of each tenth of the recommender's 200 ids: each decile of training keeps its share.
TEN_IDS = np.arange(10, recommender.ITEMS, recommender.ITEMS // 10)


def ten_item_ids(cols: Columns, seed: int) -> Columns:
    """Every pair's item one of TEN_IDS, each as often (a catalogue cut to ten items spread over the ids)."""
    ids = np.random.default_rng(seed).choice(TEN_IDS, len(cols["item_id"]))
    return {**cols, "item_id": ids.astype(cols["item_id"].dtype)}


def v1_rows(cols: Columns) -> list[dict[str, Any]]:
    """Rows of any model as `instances` takes them (named, JSON values)."""
    n = len(next(iter(cols.values())))
    return [{name: np.asarray(col[i]).tolist() for name, col in cols.items()} for i in range(n)]


def windows(draw: Callable[[int], Columns], count: int) -> list[Columns]:
    return [draw(i) for i in range(count)]


def signature(model: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "model_artifacts" / model / "manifest.json").read_text())
    return dict(data["signature"])

"""Quality slices of an index input: its ids as the drift watch counts them, grouped into its runs of ids.

A served id is the same id as 17, 17.0 or "17" (a JSON file's number is a float, a CSV's is text), and a
categorical feature's whole float is its int, as `baseline.json`'s bins name it. An index's per-id bins are
grouped into the runs of neighbouring ids its PSI is taken over, about a tenth of training each, so a slice
keeps enough rows to be named among the worst (200 ids at 1,000 labelled rows would leave 5 rows an id).
Every expected slice here is worked out by hand from the fractions written in the test, or by numpy on raw ids.
"""

from __future__ import annotations

import numpy as np
import pytest

from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Bins, Reference
from handler.monitoring.quality.slices import MIN_SLICE_ROWS, NO_VALUE, Slicer, by_slice
from tests.monitoring import data
from tests.monitoring.conftest import ARTIFACTS

# Six ids, 10..15, and training's share of each (nothing outside the range).
SHARES = [0.5, 0.05, 0.05, 0.2, 0.1, 0.1]


def _slicer() -> Slicer:
    ids = Reference(
        name="item",
        kind="categorical",
        shape=(),
        count=20,
        missing=0,
        bins=(Bins(np.array([*SHARES, 0.0]), values=tuple(str(i) for i in range(10, 16))),),
        complete=True,
        index_range=(10, 16),
    )
    colour = Reference(
        "colour", "categorical", (), 20, 0, (Bins(np.array([0.5, 0.25, 0.25, 0.0]), values=("1", "2", "3")),)
    )
    return Slicer.from_baseline(Baseline(rows=20, features={"item": ids, "colour": colour}, outputs={}))


def test_an_index_is_sliced_by_its_runs_of_neighbouring_ids() -> None:
    # A run closes once training's share so far reaches its next tenth: id 10 alone holds five tenths; 11 brings it
    # to 0.55, short of the sixth, which 12 closes (0.6); 13 closes the eighth (0.8), 14 the ninth, 15 the tenth.
    slicer = _slicer()
    assert slicer.names("item") == ["10", "11–12", "13", "14", "15", "(rest)"]
    assert slicer.bins["item"].fractions.tolist() == pytest.approx([0.5, 0.1, 0.2, 0.1, 0.1, 0.0])


@pytest.mark.parametrize("value", [13, 13.0, "13", "13.0", np.float64(13.0)])
def test_an_id_as_an_int_a_float_or_text_is_the_same_slice(value: object) -> None:
    (slot,) = _slicer().assign([{"item": value}])["item"]
    assert _slicer().names("item")[slot] == "13", (value, slot)


def test_other_values_fall_in_the_rest_and_a_missing_one_in_none() -> None:
    rows = [{"item": v} for v in (11.0, "12", 16, 9, 12.5, "x", float("nan"))] + [{"item": None}, {}, {"item": True}]
    names = _slicer().names("item")
    slots = _slicer().assign(rows)["item"].tolist()
    assert [names[s] if s != NO_VALUE else None for s in slots] == [
        *("11–12", "11–12"),  # 11 and 12 share a run
        *("(rest)",) * 5,  # outside [10, 16), not a whole number, not a number
        *(None, None, None),  # no usable value: no slice
    ]


def test_a_categorical_whole_float_is_its_int() -> None:
    names = _slicer().names("colour")
    slots = _slicer().assign([{"colour": v} for v in (2, 2.0, "2", 2.5, "two")])["colour"].tolist()
    # As the drift watch's categorical bins: a whole float is its int; text stays as it is.
    assert [names[s] for s in slots] == ["2", "2", "2", "(rest)", "(rest)"]


def test_rows_and_metrics_per_run_by_hand() -> None:
    rows = [{"item": v} for v in (10, 10.0, "11", 12, 13, 99)]
    labels = np.array([1, 0, 1, 1, 0, 1])
    answers = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6])
    slicer = _slicer()
    found = by_slice(slicer, slicer.assign(rows), "binary", labels, answers)["item"]
    assert {name: got["rows"] for name, got in found.items()} == {"10": 2, "11–12": 2, "13": 1, "(rest)": 1}
    # At the 0.5 cut: id 10 right once (0.9 for a 1) and wrong once (0.8 for a 0); 11 right, 12 wrong (0.2 for a 1).
    assert (found["10"]["accuracy"], found["11–12"]["accuracy"], found["13"]["accuracy"]) == (0.5, 0.5, 1.0)


def test_the_recommenders_item_ids_make_ten_slices_of_enough_rows() -> None:
    slicer = Slicer.from_baseline(Baseline.load(ARTIFACTS / "recommender" / "baseline.json"))
    names = slicer.names("item_id")
    assert len(names) == 11 and names[-1] == "(rest)", names
    ids = data.recommender_pairs(1000, 957)["item_id"]
    slots = slicer.assign([{"item_id": float(v)} for v in ids])["item_id"]  # as a JSON Lines file's numbers
    # By numpy on the raw ids: each run's rows are the ids between its first and last, as its name says.
    for slot, name in enumerate(names[:-1]):
        first, _, last = name.partition("–")
        inside = (ids >= int(first)) & (ids <= int(last or first))
        assert int((slots == slot).sum()) == int(inside.sum()) >= 2 * MIN_SLICE_ROWS, (name, int(inside.sum()))
    assert int((slots == len(names) - 1).sum()) == 0  # every id inside the range

"""Index inputs binned per id over their recorded range, and their concentration: values worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handler.core.signature import TensorSpec
from handler.monitoring.baseline import Baseline
from handler.monitoring.dispersion import concentration, score
from handler.monitoring.drift import Bins, Reference

ITEM = TensorSpec("item", "int32", (), index_range=(0, 5))


def test_an_index_with_a_small_range_gets_one_bin_per_id_of_the_range() -> None:
    ref = Reference.fit(ITEM, np.array([0, 0, 1, 2, 2, 2, 4], dtype=np.int32))
    (bins,) = ref.bins
    assert (ref.kind, ref.index_range, ref.complete) == ("categorical", (0, 5), True)
    assert bins.values == ("0", "1", "2", "3", "4")  # id 3, never in training, still has its bin
    assert bins.fractions.tolist() == pytest.approx([2 / 7, 1 / 7, 3 / 7, 0.0, 1 / 7, 0.0])


def test_an_index_with_a_wide_range_keeps_quantile_bins() -> None:
    wide = TensorSpec("user", "int64", (), index_range=(0, 1001))
    ref = Reference.fit(wide, np.arange(1001))
    assert ref.kind == "numeric" and ref.bins[0].edges is not None and ref.index_range is None


@pytest.mark.parametrize(
    "served",
    [
        np.array([2, 2, 4, 7, -1], dtype=np.int32),
        np.array([2.0, 2.0, 4.0, 7.0, 2.5]),
        np.array(["2", "2", "4", "7", "two"], dtype=object),
    ],
    ids=["ints", "floats", "text"],
)
def test_served_ids_count_in_their_bin_whatever_their_type(served: np.ndarray) -> None:
    ref = Reference.fit(ITEM, np.array([0, 1, 2, 3, 4], dtype=np.int32))
    tally = ref.tally(served)
    # ids 2, 2, 4 in their bins; 7 is outside [0, 5), and -1, 2.5 or "two" are no id of it: the last bin
    assert tally.counts[0].tolist() == [0, 0, 2, 0, 1, 2]
    drift = ref.compare(tally, 0.1)
    assert drift.out_of_vocabulary == pytest.approx(2 / 5)


def test_a_category_bin_takes_a_whole_float_as_its_int() -> None:
    bins = Bins(np.array([0.5, 0.5, 0.0]), values=("17", "18"))
    assert bins.count(np.array([17, 17.0, "17", 18.0, 18.5], dtype=object)).tolist() == [3, 1, 1]


def test_concentration_is_the_chance_two_draws_without_replacement_are_equal() -> None:
    # counts 2, 1, 1 of 4 values: 2 x 1 equal ordered pairs out of 4 x 3
    assert concentration(np.array([2, 1, 1])) == pytest.approx(2 / 12)
    assert concentration(np.array([5, 0, 0])) == 1.0


def test_the_score_of_a_ratio_is_the_jeffreys_divergence_of_two_normals() -> None:
    assert score(1.0) == 0.0
    assert score(2.0) == pytest.approx(0.25) == score(0.5)  # (2 + 1/2) / 2 - 1
    assert score(1.25**2) == pytest.approx((1.5625 + 1 / 1.5625) / 2 - 1)  # a std 25% up: just over 0.1
    assert score(0.0) == pytest.approx((1e-4 + 1e4) / 2 - 1)  # clipped, not infinite


def test_ten_ids_where_training_had_two_hundred_are_flagged_and_deciles_of_them_are_not() -> None:
    spec = TensorSpec("item", "int32", (), index_range=(0, 200))
    training = np.repeat(np.arange(200), 30).astype(np.int32)  # every id 30 times
    served = np.repeat(np.arange(10, 200, 20), 100).astype(np.int32)  # one id per tenth, 100 times each
    drift = Reference.fit(spec, training).compare(Reference.fit(spec, training).tally(served), 0.1)
    # Training's concentration: 200 x 30 x 29 / (6000 x 5999); served: 10 x 100 x 99 / (1000 x 999)
    ratio = (10 * 100 * 99 / (1000 * 999)) / (200 * 30 * 29 / (6000 * 5999))
    assert drift.dispersion is not None and drift.dispersion.of == "concentration"
    assert drift.dispersion.score == pytest.approx((ratio + 1 / ratio) / 2 - 1)
    assert drift.drifted
    # PSI over runs of neighbouring ids, a tenth of training each: each run got its tenth, so about 0
    assert drift.score < 0.01


def test_an_index_reference_round_trips_through_json() -> None:
    spec = TensorSpec("item", "int32", (), index_range=(3, 9))
    baseline = Baseline.fit([spec], [], {"item": np.array([3, 4, 4, 8], dtype=np.int32)}, {})
    again = Baseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    assert again.features["item"].index_range == (3, 9) and again.features["item"].kind == "categorical"
    assert again.features["item"].bins[0].fractions.tolist() == [0.25, 0.5, 0.0, 0.0, 0.0, 0.25, 0.0]
    assert again.to_dict() == baseline.to_dict()


def test_a_sequence_of_ids_is_binned_per_id_over_every_position() -> None:
    """Token ids into an Embedding, [rows, 3]: one bin per id of the range, counted over all positions (by hand)."""
    tokens = TensorSpec("tokens", "int32", (3,), index_range=(0, 4))
    ref = Reference.fit(tokens, np.array([[0, 1, 1], [3, 1, 0]], dtype=np.int32))
    assert (ref.kind, ref.index_range, ref.shape) == ("categorical", (0, 4), (3,))
    assert ref.bins[0].fractions.tolist() == pytest.approx([2 / 6, 3 / 6, 0.0, 1 / 6, 0.0])
    t = ref.tally(np.array([[2, 2, 9]], dtype=np.int32))
    assert t.counts[0].tolist() == [0, 0, 2, 0, 1] and t.out_of_vocabulary == 1


def test_an_embedding_models_token_ids_drifting_to_a_few_ids_are_flagged(tmp_path: Path) -> None:
    """An ordinary Keras model (Embedding over 6 token ids of 60): exported with its training ids, its baseline bins
    the ids per id; a window of ten ids, one per sixth of the range, keeps every quantile's share (positions as
    channels saw nothing) and is flagged by its concentration, where fresh windows are not."""
    import keras

    from handler.export import export_model

    ids = keras.Input(shape=(6,), dtype="int32", name="tokens")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(60, 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(pooled))
    rng = np.random.default_rng(1)
    training = rng.integers(0, 60, (3000, 6)).astype(np.int32)
    export_model(
        model,
        None,
        {"one": {"instances": [{"tokens": [1, 2, 3, 4, 5, 6]}]}},
        tmp_path / "m",
        name="m",
        version="1",
        litert_runtime=False,
        training_data={"tokens": training},
        holdout_data={"tokens": rng.integers(0, 60, (3000, 6)).astype(np.int32)},
    )
    baseline = Baseline.load(tmp_path / "m" / "baseline.json")
    ref = baseline.features["tokens"]
    assert (ref.kind, ref.index_range, len(ref.bins[0].fractions)) == ("categorical", (0, 60), 61)

    def drifted(window: np.ndarray) -> bool:
        return "tokens" in baseline.compare(baseline.tally({"tokens": window}, None), len(window)).drifted_names()

    fresh = [drifted(np.random.default_rng(100 + w).integers(0, 60, (1000, 6)).astype(np.int32)) for w in range(20)]
    few = np.arange(3, 60, 6)  # ten ids, one in each sixth of the range
    narrowed = [drifted(np.random.default_rng(200 + w).choice(few, (1000, 6)).astype(np.int32)) for w in range(20)]
    assert not any(fresh) and all(narrowed), (fresh, narrowed)

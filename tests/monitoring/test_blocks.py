"""The positional map of images and sequences: block means, their baseline and the window's score, by hand.

Expected values are worked out here (small arrays whose block means are read off) or with numpy on the
raw training rows, never by the module under test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from handler.monitoring import blocks
from handler.monitoring.dispersion import Moments
from tests.monitoring.conftest import ARTIFACTS
from training import digits, sensor


def test_an_images_blocks_are_a_4_by_4_grid_of_its_first_two_axes() -> None:
    # An 8 x 8 image, one channel: each 2 x 2 block holds its block number (row-major), so its mean is that number.
    image = np.kron(np.arange(16, dtype=np.float64).reshape(4, 4), np.ones((2, 2)))[None, :, :, None]
    assert blocks.spatial((8, 8, 1), 1) == (8, 8)
    assert blocks.means(image, (8, 8), 1).tolist() == [list(map(float, range(16)))]


def test_a_sequences_blocks_are_8_runs_of_steps_per_channel() -> None:
    # 20 steps split 3, 3, 3, 3, 2, 2, 2, 2 (as numpy's array_split): steps 0..19 on channel 0, ten times that on 1.
    steps = np.arange(20, dtype=np.float64)
    x = np.stack([steps, 10 * steps], axis=1)[None]
    runs = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13], [14, 15], [16, 17], [18, 19]]
    by_hand = [[float(np.mean(r)), 10 * float(np.mean(r))] for r in runs]  # 1, 10; 4, 40; ...; 12.5, 125; ...
    assert blocks.spatial((20, 3), 3) == (20,)
    assert blocks.means(x, (20,), 2).reshape(8, 2).tolist() == by_hand


def test_no_map_for_a_vector_or_a_free_dimension() -> None:
    assert blocks.spatial((6,), 6) is None  # six channels, one position (the recommender's user features)
    assert blocks.spatial((1,), 1) is None
    assert blocks.spatial((None, 3), 3) is None


def test_the_score_is_the_sum_of_squared_standardized_differences_less_the_sampling_noise() -> None:
    stats = {"block_mean": [[0.0], [0.0]], "block_std": [[1.0], [2.0]], "std": [1.0]}
    # 100 examples whose block means average 0.5 and 1.0: d = 0.5 and 0.5, sum 0.5, less 2 blocks / 100 = 0.48.
    window = Moments(np.full(2, 100.0), np.array([50.0, 100.0]), np.zeros(2))
    ((score, served),) = blocks.scores(window, stats)
    assert score == pytest.approx(0.48) and served == pytest.approx(0.5)  # the first block of the two largest
    # 4 examples a tenth of a std away: 0.01 + 0.0025 is under the noise 2 / 4, so 0.
    small = Moments(np.full(2, 4.0), np.array([0.4, 0.8]), np.zeros(2))
    assert blocks.scores(small, stats) == [(0.0, pytest.approx(0.1))]
    # A block training always had dark (std 0) is measured against a tenth of the channel's std: 0.1.
    dark = {"block_mean": [[0.0]], "block_std": [[0.0]], "std": [1.0]}
    one = Moments(np.full(1, 100.0), np.array([10.0]), np.zeros(1))  # mean 0.1: d = 1, less 1 / 100
    assert blocks.scores(one, dark)[0][0] == pytest.approx(0.99)


@pytest.mark.parametrize("model", ["digits", "sensor"])
def test_the_shipped_map_is_the_training_rows_block_means(model: str) -> None:
    """baseline.json's block means and stds against numpy on the rows training drew (training/<model>.py: seed 42)."""
    if model == "digits":
        x = digits.generate(4000, 42)[0][..., 0].astype(np.float64)  # [n, 28, 28]
        edges = np.array_split(np.arange(28), 4)  # 7 rows and 7 columns a block
        found = np.stack([x[:, r][:, :, c].mean(axis=(1, 2)) for r in edges for c in edges], axis=1)[..., None]
    else:
        x = sensor.generate(3000, 42)[0].astype(np.float64)  # [n, 20, 3]
        runs = np.array_split(np.arange(20), 8)
        found = np.stack([x[:, r, :].mean(axis=1) for r in runs], axis=1)
    trained = json.loads((ARTIFACTS / model / "baseline.json").read_text())
    feature = next(iter(trained["features"].values()))
    assert np.allclose(feature["block_mean"], found.mean(axis=0), rtol=1e-9, atol=1e-9)
    assert np.allclose(feature["block_std"], found.std(axis=0), rtol=1e-9, atol=1e-9)

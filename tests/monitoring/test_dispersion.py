"""The dispersion score of numbers, sequences and images beside PSI: values computed here with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from handler.core.signature import TensorSpec
from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Reference


def jeffreys(served_std: float, training_std: float) -> float:
    r = (served_std / training_std) ** 2
    return (r + 1 / r) / 2 - 1


def test_a_number_served_twice_as_spread_scores_its_variance_ratio() -> None:
    rng = np.random.default_rng(5)
    training, served = rng.normal(3.0, 2.0, 4000), rng.normal(3.0, 4.0, 1000)
    ref = Reference.fit(TensorSpec("x", "float64"), training)
    drift = ref.compare(ref.tally(served), 0.1)
    assert drift.dispersion is not None and drift.dispersion.of == "std"
    assert drift.dispersion.served == pytest.approx(served.std())
    assert drift.dispersion.score == pytest.approx(jeffreys(served.std(), training.std()))
    assert drift.drifted and drift.to_dict()["dispersion_of"] == "std"


def test_a_location_shift_alone_leaves_the_dispersion_at_zero() -> None:
    x = np.random.default_rng(6).normal(0.0, 1.0, 2000)
    ref = Reference.fit(TensorSpec("x", "float64"), x)
    drift = ref.compare(ref.tally(x + 5.0), 0.1)
    assert drift.dispersion is not None and drift.dispersion.score == pytest.approx(0.0, abs=1e-9)
    assert drift.score > 1.0  # PSI sees the shift


def test_scalars_binned_together_give_the_dispersion_of_one_feature_alone() -> None:
    rng = np.random.default_rng(7)
    specs = [TensorSpec("a", "float64"), TensorSpec("b", "float64")]
    training = {"a": rng.normal(0, 1, 3000), "b": rng.exponential(2.0, 3000)}
    baseline = Baseline.fit(specs, [], training, {})
    served = {"a": rng.normal(0, 1.5, 500), "b": rng.exponential(2.0, 500)}
    together = baseline.compare(baseline.tally(served, None), 500)
    for name in ("a", "b"):
        ref = baseline.features[name]
        alone = ref.compare(ref.tally(served[name]), 0.1)
        assert together.features[name].dispersion == alone.dispersion
        expected = jeffreys(served[name].std(), training[name].std())
        assert together.features[name].dispersion.score == pytest.approx(expected)  # type: ignore[union-attr]


def test_a_sequence_records_the_std_of_its_steps_per_channel_and_sees_more_noise() -> None:
    rng = np.random.default_rng(8)
    t = np.linspace(0, 2 * np.pi, 20)

    def draw(n: int, noise: float) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 2))
        return np.sin(t[None, :, None] + phase) + rng.normal(0, noise, (n, 20, 2))

    training = draw(2000, 0.1)
    ref = Reference.fit(TensorSpec("s", "float32", (20, 2)), training)
    steps = np.diff(training, axis=1).reshape(-1, 2)
    assert ref.stats["step_std"] == pytest.approx(steps.std(axis=0).tolist())
    noisy = draw(500, 0.3)
    # Channel 1 three times as noisy: the steps' std moves far more than the pooled values' std
    noisy[..., 0] = draw(500, 0.1)[..., 0]
    drift = ref.compare(ref.tally(noisy), 0.1)
    served_steps = np.diff(noisy, axis=1).reshape(-1, 2)[:, 1].std()
    assert drift.dispersion is not None
    assert (drift.dispersion.of, drift.dispersion.channel) == ("step_std", 1)
    assert drift.dispersion.score == pytest.approx(jeffreys(served_steps, steps[:, 1].std()))
    assert drift.drifted


def test_a_window_of_two_batches_has_the_dispersion_of_one_batch_of_both() -> None:
    rng = np.random.default_rng(9)
    ref = Reference.fit(TensorSpec("s", "float32", (10, 3)), rng.normal(0, 1, (1000, 10, 3)))
    a, b = rng.normal(0, 1.3, (200, 10, 3)), rng.normal(0.2, 1.0, (300, 10, 3))
    tally = ref.tally(a)
    tally.add(ref.tally(b))
    both = ref.compare(ref.tally(np.concatenate([a, b])), 0.1)
    split = ref.compare(tally, 0.1)
    assert split.dispersion is not None and both.dispersion is not None
    assert split.dispersion.score == pytest.approx(both.dispersion.score)
    assert split.dispersion.channel == both.dispersion.channel


def test_the_report_adds_the_dispersion_beside_the_psi_it_had() -> None:
    ref = Reference.fit(TensorSpec("x", "float64"), np.arange(100.0))
    out = ref.compare(ref.tally(np.arange(0.0, 100.0, 2.0)), 0.1).to_dict()
    assert {"score", "drifted", "kind", "values", "out_of_range", "mean"} <= set(out)
    assert out["dispersion_of"] == "std" and out["served_std"] == pytest.approx(np.arange(0.0, 100.0, 2.0).std())
    assert out["dispersion"] == pytest.approx(
        round(jeffreys(np.arange(0.0, 100.0, 2.0).std(), np.arange(100.0).std()), 6)
    )

"""The statistics of handler.monitoring.drift, against values written by hand or computed here with numpy."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from handler.core.service import Prediction
from handler.core.signature import TensorSpec
from handler.errors import FieldError
from handler.monitoring.baseline import Baseline
from handler.monitoring.drift import Bins, Reference, psi
from handler.monitoring.window import DriftMonitor


def test_psi_of_two_bins_is_the_textbook_sum() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.4 (0.587787 + 1.609438)
    assert psi(np.array([90, 10]), np.array([0.5, 0.5])) == pytest.approx(0.878890, abs=1e-6)
    assert psi(np.array([50, 50]), np.array([0.5, 0.5])) == 0.0


def test_psi_floors_an_empty_bin_at_one_in_ten_thousand() -> None:
    # served all in the bin training never had: 2 x (1 - 1e-4) x ln(1e4)
    assert psi(np.array([0, 10]), np.array([1.0, 0.0])) == pytest.approx(2 * 0.9999 * math.log(1e4), rel=1e-9)


def test_psi_of_nothing_served_is_nan() -> None:
    assert math.isnan(psi(np.array([0, 0]), np.array([0.5, 0.5])))


def test_numeric_reference_has_numpys_statistics_and_decile_bins() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 2.0, 5000)
    x[:7] = np.nan
    ref = Reference.fit(TensorSpec("x", "float64"), x)
    finite = x[np.isfinite(x)]
    assert (ref.kind, ref.count, ref.missing) == ("numeric", 4993, 7)
    assert ref.stats["mean"] == pytest.approx(finite.mean()) and ref.stats["std"] == pytest.approx(finite.std())
    assert (ref.stats["min"], ref.stats["max"]) == (finite.min(), finite.max())
    (bins,) = ref.bins
    assert bins.edges is not None
    # The deciles as training values: the smallest value with at least that share of the data at or below it.
    ordered = np.sort(finite)
    cuts = np.array([ordered[math.ceil(q * len(ordered)) - 1] for q in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)])
    assert np.array_equal(bins.edges, cuts)
    lower = np.concatenate([[-np.inf], cuts])
    upper = np.concatenate([cuts, [np.inf]])
    fractions = [np.mean((finite >= lo) & (finite < hi)) for lo, hi in zip(lower, upper, strict=True)]
    assert np.allclose(bins.fractions, fractions) and bins.fractions.sum() == pytest.approx(1.0)


def test_a_discrete_feature_gets_one_bin_per_value() -> None:
    x = np.array([1.0] * 30 + [2.0] * 50 + [3.0] * 20)
    (bins,) = Reference.fit(TensorSpec("score", "float64"), x).bins
    assert bins.edges is not None and bins.edges.tolist() == [1.0, 2.0, 3.0]
    assert bins.fractions.tolist() == [0.0, 0.3, 0.5, 0.2]  # (-inf, 1), [1, 2), [2, 3), [3, inf)


def test_a_category_keeps_its_top_values_and_the_rest() -> None:
    x = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2, dtype=object)
    bins, complete = Reference.fit(TensorSpec("c", "string"), x).bins[0], Reference.fit(TensorSpec("c", "string"), x)
    assert bins.values == ("a", "b", "c") and bins.fractions.tolist() == [0.5, 0.3, 0.2, 0.0]
    assert complete.complete
    few = Bins(np.array([0.5, 0.3, 0.2]), values=("a", "b"))
    assert few.count(np.array(["a", "c", "d", "b", "a"], dtype=object)).tolist() == [2, 1, 2]


def test_out_of_range_and_out_of_vocabulary_rates() -> None:
    numbers = Reference.fit(TensorSpec("x", "float64"), np.arange(0.0, 11.0))  # training [0, 10]
    drift = numbers.compare(numbers.tally(np.array([-1.0, 5.0, 11.0, 10.0])), 0.1)
    assert drift.out_of_range == 0.5 and drift.out_of_vocabulary is None and drift.mean == 6.25
    words = Reference.fit(TensorSpec("c", "string"), np.array(["x", "y"], dtype=object))
    drift = words.compare(words.tally(np.array(["x", "new", "y", "other"], dtype=object)), 0.1)
    assert drift.out_of_vocabulary == 0.5 and drift.out_of_range is None


def test_imputed_rate_counts_the_fill_value_only_where_training_never_had_it() -> None:
    continuous = Reference.fit(TensorSpec("x", "float64", fill_value=2.5), np.array([1.0, 2.0, 3.0, 4.0]))
    assert continuous.compare(continuous.tally(np.array([2.5, 2.5, 1.0, 4.0])), 0.1).imputed == 0.5
    # 3.0 is also a real value of a 1..5 score: an imputed 3.0 cannot be told from a real one.
    score = Reference.fit(TensorSpec("s", "float64", fill_value=3.0), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert score.compare(score.tally(np.array([3.0, 3.0])), 0.1).imputed is None


def test_a_tensor_is_described_per_channel_and_a_shift_names_its_channel() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, (4000, 20, 3)).astype(np.float32)
    ref = Reference.fit(TensorSpec("r", "float32", (20, 3)), x)
    assert ref.kind == "tensor" and len(ref.bins) == 3 and ref.count == 4000 * 20
    assert ref.stats["mean"] == pytest.approx([float(x[..., c].astype(np.float64).mean()) for c in range(3)])
    served = rng.normal(0.0, 1.0, (1000, 20, 3)).astype(np.float32)
    assert not ref.compare(ref.tally(served), 0.1).drifted
    served[..., 1] += 0.5
    drift = ref.compare(ref.tally(served), 0.1)
    assert drift.drifted and drift.channel == 1


def test_uint8_pixels_are_counted_as_their_values_are() -> None:
    """The lookup table over uint8 values bins exactly like a search would."""
    edges = np.array([0.0, 3.0, 9.5, 200.0])
    bins = Bins(np.full(5, 0.2), edges=edges)
    pixels = np.array([0, 1, 3, 9, 10, 199, 200, 255], dtype=np.uint8)
    # (-inf, 0): none; [0, 3): 0, 1; [3, 9.5): 3, 9; [9.5, 200): 10, 199; [200, inf): 200, 255
    assert bins.count(pixels).tolist() == [0, 2, 2, 2, 2]


def test_scalar_features_binned_together_count_as_written_out() -> None:
    """All scalar features are binned in one pass over padded cut points: the counts are the bins written by hand."""
    a = Reference(
        "a", "numeric", (), 4, 0, (Bins(np.full(4, 0.25), edges=np.array([1.0, 2.0, 3.0])),), {"min": 0.0, "max": 4.0}
    )
    b = Reference("b", "numeric", (), 4, 0, (Bins(np.full(2, 0.5), edges=np.array([10.0])),), {"min": 0.0, "max": 20.0})
    baseline = Baseline(rows=4, features={"a": a, "b": b}, outputs={})
    columns = {"a": np.array([0.5, 1.0, 2.5, 3.0, 9.0]), "b": np.array([10.0, 9.99, -1.0, 11.0, 10.0])}
    tallies = baseline.tally(columns, None)
    # a: (-inf, 1): 0.5; [1, 2): 1.0; [2, 3): 2.5; [3, inf): 3.0, 9.0. b: (-inf, 10): 9.99, -1; [10, inf): 10, 11, 10
    assert tallies["features/a"].counts[0].tolist() == [1, 1, 1, 2]
    assert tallies["features/b"].counts[0].tolist() == [2, 3]
    assert (tallies["features/a"].out_of_range, tallies["features/b"].out_of_range) == (1, 1)  # 9.0 > 4; -1 < 0


@pytest.mark.parametrize("features", [9, 40])  # 90 bins fit a byte; 400 need two
def test_binning_all_scalars_at_once_agrees_with_a_binary_search_per_feature(features: int) -> None:
    from handler.monitoring.baseline import _bin_rows

    rng = np.random.default_rng(features)
    x = rng.integers(-5, 6, size=(features, 3000)).astype(np.float64)  # integers: many values sit on a cut point
    widths = rng.integers(1, 10, size=features)
    edges = np.full((features, 9), np.inf)
    for j, w in enumerate(widths):
        edges[j, :w] = np.sort(rng.choice(np.arange(-5.0, 6.0), size=w, replace=False))
    counts = _bin_rows(x, edges)
    for j, w in enumerate(widths):
        expected = np.bincount(np.searchsorted(edges[j, :w], x[j], side="right"), minlength=w + 1)
        assert counts[j, : w + 1].tolist() == expected.tolist() and not counts[j, w + 1 :].any()


def test_the_baseline_round_trips_through_json(tmp_path: pytest.TempPathFactory) -> None:
    specs = [TensorSpec("x", "float64"), TensorSpec("c", "string"), TensorSpec("t", "uint8", (4, 4, 1))]
    rng = np.random.default_rng(1)
    data = {
        "x": rng.normal(size=300),
        "c": rng.choice(["a", "b"], 300).astype(object),
        "t": rng.integers(0, 256, (300, 4, 4, 1)).astype(np.uint8),
    }
    outputs = [TensorSpec("p", "float32", (1,))]
    baseline = Baseline.fit(specs, outputs, data, {"p": rng.uniform(size=(300, 1))})
    path = tmp_path / "baseline.json"  # type: ignore[operator]
    baseline.save(path)
    again = Baseline.load(path)
    for name in ("x", "c", "t"):
        a, b = baseline.features[name], again.features[name]
        assert a.to_dict() == b.to_dict()
        assert np.array_equal(a.tally(data[name][:50]).counts[0], b.tally(data[name][:50]).counts[0])


def _prediction(n: int, problems: dict[int, list[FieldError]] | None = None) -> Prediction:
    return Prediction({"p": np.full((n, 1), 0.5, dtype=np.float32)}, output_problems=problems or {})


def _monitor(window: int, reports: list) -> DriftMonitor:
    rng = np.random.default_rng(2)
    baseline = Baseline.fit(
        [TensorSpec("x", "float64")], [TensorSpec("p", "float32", (1,))], {"x": rng.normal(size=500)},
        {"p": rng.uniform(size=(500, 1))},
    )  # fmt: skip
    return DriftMonitor(baseline, window=window, on_report=reports.append)


def test_a_window_closes_at_the_batch_that_reaches_it_and_counts_whole_batches() -> None:
    reports: list = []
    monitor = _monitor(1000, reports)
    for _ in range(999):
        monitor.observe({"x": np.zeros(1)}, _prediction(1))
    assert reports == []
    monitor.observe({"x": np.zeros(1)}, _prediction(1))
    assert [r.rows for r in reports] == [1000] and reports[0].features["x"].values == 1000
    monitor.observe({"x": np.zeros(1900)}, _prediction(1900))
    assert [r.rows for r in reports] == [1000, 1900] and reports[1].features["x"].values == 1900


def test_a_window_past_twice_its_rows_bins_an_even_spread_of_them() -> None:
    """A 10,000-row chunk closes one window of 10,000 rows, of which 2,000 evenly spread are binned: with the
    first half of the chunk at 0 and the second at 1 (training is a standard normal, cut at its deciles), the
    bins hold 1,000 zeros and 1,000 ones, as the chunk's halves do."""
    reports: list = []
    monitor = _monitor(1000, reports)
    chunk = np.repeat([0.0, 1.0], 5000)
    monitor.observe({"x": chunk}, _prediction(10_000))
    (report,) = reports
    assert report.rows == 10_000 and report.features["x"].values == 2000 and report.outputs["p"].values == 2000
    edges = monitor.baseline.features["x"].bins[0].edges
    zero_bin, one_bin = np.searchsorted(edges, [0.0, 1.0], side="right")
    served = np.array(report.features["x"].served) * 2000
    assert served[zero_bin] == 1000 and served[one_bin] == 1000


def test_rows_without_an_answer_are_left_out_of_the_prediction_distribution() -> None:
    reports: list = []
    monitor = _monitor(100, reports)
    problem = [FieldError(0, "p", "NaN")]
    monitor.observe({"x": np.zeros(100)}, _prediction(100, {0: problem, 7: problem}))
    assert reports[0].features["x"].values == 100 and reports[0].outputs["p"].values == 98


def test_a_failing_report_callback_never_fails_the_prediction(caplog: pytest.LogCaptureFixture) -> None:
    def broken(report: object) -> None:
        raise RuntimeError("the metrics sink is down")

    monitor = _monitor(100, [])
    monitor.on_report = broken
    with caplog.at_level(logging.ERROR, logger="skewless.drift"):
        monitor.observe({"x": np.zeros(100)}, _prediction(100))
    assert "drift window of 100 rows dropped" in caplog.text

"""Tests for langchain_adaptive.calibration._baselines: Platt, isotonic, binning, Wilson."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_adaptive.calibration import (
    HistogramBinningCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    brier_score,
)
from langchain_adaptive.calibration._base import Calibrator
from langchain_adaptive.calibration._baselines import wilson_quantiles
from tests.unit_tests.calibration.conftest import INTERCEPT, SLOPE, Synthetic

GRID = np.linspace(0.0, 1.0, 201)


def _fit(calibrator: Calibrator, data: Synthetic) -> Calibrator:
    return calibrator.fit(data.raw, data.features, data.successes, data.trials)


# -- Wilson bounds -----------------------------------------------------------------------


def test_wilson_matches_the_textbook_interval() -> None:
    # 4 of 8 at 90% one-sided: z = 1.28155, centre 0.5,
    # half-width z * sqrt(1/32 + z^2/256) / (1 + z^2/8) = 0.206355.
    bounds = wilson_quantiles(np.array([0.5]), np.array([8.0]), (0.1, 0.5, 0.9))
    np.testing.assert_allclose(bounds, [[0.293645, 0.5, 0.706355]], atol=1e-6)
    # 0 of 10 at 97.5%: the upper bound is z^2 / (n + z^2) = 0.2775.
    upper = wilson_quantiles(np.array([0.0]), np.array([10.0]), (0.025, 0.975))
    np.testing.assert_allclose(upper, [[0.0, 0.27754]], atol=1e-5)


def test_wilson_narrows_with_more_trials_and_never_crosses() -> None:
    p = np.linspace(0.0, 1.0, 11)
    narrow = wilson_quantiles(p, np.full(11, 1000.0), (0.05, 0.1, 0.5, 0.9, 0.95))
    wide = wilson_quantiles(p, np.full(11, 5.0), (0.05, 0.1, 0.5, 0.9, 0.95))
    assert np.all(np.diff(narrow, axis=1) >= 0) and np.all(np.diff(wide, axis=1) >= 0)
    np.testing.assert_allclose(narrow[:, 2], p)
    assert np.all(wide[:, 0] <= narrow[:, 0] + 1e-12)


# -- Platt -------------------------------------------------------------------------------


def test_platt_recovers_the_true_slope_and_intercept(train_data: Synthetic) -> None:
    platt = _fit(PlattCalibrator(), train_data)
    assert platt.slope == pytest.approx(SLOPE, abs=0.08)
    assert platt.intercept == pytest.approx(INTERCEPT, abs=0.12)


def test_platt_is_finite_on_separable_data() -> None:
    raw = np.r_[np.full(20, 0.1), np.full(20, 0.9)]
    successes = np.r_[np.zeros(20), np.full(20, 4.0)]
    platt = PlattCalibrator().fit(raw, None, successes, np.full(40, 4.0))
    assert np.isfinite(platt.slope) and platt.slope > 1
    assert platt.predict([0.9])[0].median > 0.99


def test_platt_interval_uses_interval_trials(train_data: Synthetic) -> None:
    default = _fit(PlattCalibrator(), train_data)
    wide = _fit(PlattCalibrator(interval_trials=2), train_data)
    assert default.predict([0.7])[0].median == pytest.approx(wide.predict([0.7])[0].median)
    assert wide.predict([0.7])[0].lower < default.predict([0.7])[0].lower


# -- isotonic ----------------------------------------------------------------------------


def test_isotonic_is_monotone_and_pools_violators(train_data: Synthetic) -> None:
    isotonic = _fit(IsotonicCalibrator(), train_data)
    quantiles = isotonic.predict_quantiles(GRID)
    assert np.all(np.diff(quantiles[:, 1]) >= 0)
    values = [block[1] for block in isotonic.blocks]
    centres = [block[0] for block in isotonic.blocks]
    assert np.all(np.diff(values) > 0) and np.all(np.diff(centres) > 0)
    assert sum(block[2] for block in isotonic.blocks) == train_data.trials.sum()


def test_isotonic_by_hand() -> None:
    # Rates 0.5, 0.25, 1.0 at scores 0.1, 0.2, 0.3: the first two pool to 3/8 at 0.15.
    raw = np.array([0.1, 0.2, 0.3])
    isotonic = IsotonicCalibrator(min_examples=3).fit(raw, None, [2, 1, 4], [4, 4, 4])
    assert isotonic.blocks == [(0.15000000000000002, 0.375, 8.0), (0.3, 1.0, 4.0)]
    median = isotonic.predict_quantiles([0.0, 0.15, 0.225, 0.3, 1.0])[:, 1]
    np.testing.assert_allclose(median, [0.375, 0.375, 0.6875, 1.0, 1.0])
    # Between blocks the interval rests on the smaller block (4 trials).
    between = isotonic.predict_quantiles([0.225])[0]
    np.testing.assert_allclose(
        between, wilson_quantiles(np.array([0.6875]), [4.0], (0.1, 0.5, 0.9))[0]
    )


# -- histogram binning -------------------------------------------------------------------


def test_equal_mass_bins_hold_similar_counts(train_data: Synthetic) -> None:
    binning = _fit(HistogramBinningCalibrator(n_bins=10), train_data)
    trials = [b[3] for b in binning.bins]
    assert len(trials) == 10
    assert max(trials) - min(trials) <= 8 * 2  # ties aside, 120 records each
    rates = np.array([b[2] for b in binning.bins])
    assert rates[-1] > rates[0]


def test_equal_width_bins_borrow_for_empty_bins() -> None:
    raw = np.r_[np.full(10, 0.05), np.full(10, 0.95)]
    successes = np.r_[np.full(10, 1.0), np.full(10, 7.0)]
    binning = HistogramBinningCalibrator(strategy="equal_width", n_bins=4, min_examples=5)
    binning.fit(raw, None, successes, np.full(20, 8.0))
    assert [b[:2] for b in binning.bins] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert [b[2] for b in binning.bins] == [0.125, 0.125, 0.875, 0.875]
    median = binning.predict_quantiles([0.0, 0.3, 0.6, 1.0])[:, 1]
    np.testing.assert_allclose(median, [0.125, 0.125, 0.875, 0.875])


def test_equal_mass_bins_survive_heavy_ties() -> None:
    raw = np.r_[np.full(30, 0.5), np.linspace(0.6, 0.9, 10)]
    binning = HistogramBinningCalibrator(n_bins=10).fit(
        raw, None, np.full(40, 2.0), np.full(40, 4.0)
    )
    assert 1 <= len(binning.bins) <= 10
    assert binning.predict([0.5])[0].median == 0.5


# -- all three ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "calibrator",
    [
        PlattCalibrator(),
        IsotonicCalibrator(),
        HistogramBinningCalibrator(),
        HistogramBinningCalibrator(strategy="equal_width"),
        IsotonicCalibrator(interval_trials=8),
    ],
    ids=["platt", "isotonic", "equal-mass", "equal-width", "isotonic-n8"],
)
def test_baselines_beat_the_raw_scores_on_held_out_data(
    calibrator: Calibrator, train_data: Synthetic, held_out: Synthetic
) -> None:
    _fit(calibrator, train_data)
    quantiles = calibrator.predict_quantiles(held_out.raw, held_out.features)
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    assert np.all((quantiles >= 0) & (quantiles <= 1))
    calibrated = brier_score(quantiles[:, 1], held_out.successes, held_out.trials)
    raw = brier_score(held_out.raw, held_out.successes, held_out.trials)
    truth = brier_score(held_out.true_p, held_out.successes, held_out.trials)
    assert truth <= calibrated < raw - 0.01
    assert calibrated < truth + 0.005
    estimates = calibrator.predict(held_out.raw[:5])
    assert [e.raw_score for e in estimates] == list(held_out.raw[:5])

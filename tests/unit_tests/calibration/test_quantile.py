"""Tests for langchain_adaptive.calibration._quantile: the pinball-loss quantile head."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from langchain_adaptive.calibration import (
    Calibrator,
    brier_score,
    quantile_coverage,
)
from langchain_adaptive.calibration._base import CONFIG_NAME, WEIGHTS_NAME
from langchain_adaptive.errors import CalibrationError
from tests.unit_tests.calibration.conftest import Synthetic, make_synthetic

torch = pytest.importorskip("torch")

from langchain_adaptive.calibration._quantile import QuantileCalibrator  # noqa: E402


@pytest.fixture(scope="module")
def conformal(train_data: Synthetic) -> QuantileCalibrator:
    calibrator = QuantileCalibrator(conformal_coverage=0.9, seed=0, metadata={"policy": "p"})
    return calibrator.fit_records(train_data.records)


def test_quantiles_never_cross(conformal: QuantileCalibrator) -> None:
    rng = np.random.default_rng(5)
    raw = np.r_[0.0, 1.0, rng.uniform(size=500)]
    features = np.c_[rng.integers(0, 40, 502), rng.uniform(0, 12, 502)]  # beyond training range
    quantiles = conformal.predict_quantiles(raw, features)
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    assert np.all((quantiles >= 0) & (quantiles <= 1))
    for estimate in conformal.predict(raw[:20], features[:20]):
        assert estimate.lower <= estimate.median <= estimate.quantiles[0.9]


def test_conformal_lower_quantile_covers_ninety_percent(
    conformal: QuantileCalibrator, held_out: Synthetic
) -> None:
    quantiles = conformal.predict_quantiles(held_out.raw, held_out.features)
    coverage = quantile_coverage(quantiles[:, 0], held_out.rates)
    assert 0.85 <= coverage <= 0.95
    assert quantile_coverage(quantiles[:, 1], held_out.rates) == pytest.approx(0.5, abs=0.1)
    assert conformal.conformal_shift != 0.0


def test_quantile_median_beats_the_raw_scores(
    conformal: QuantileCalibrator, held_out: Synthetic
) -> None:
    median = conformal.predict_quantiles(held_out.raw, held_out.features)[:, 1]
    calibrated = brier_score(median, held_out.successes, held_out.trials)
    raw = brier_score(held_out.raw, held_out.successes, held_out.trials)
    truth = brier_score(held_out.true_p, held_out.successes, held_out.trials)
    assert calibrated < raw - 0.01
    assert calibrated < truth + 0.005


def _hopeless_below(threshold: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefixes scored below ``threshold`` never succeed; above it p equals the score."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(size=n)
    return raw, rng.binomial(8, np.where(raw < threshold, 0.0, raw)).astype(float)


def test_the_stretched_sigmoid_reaches_zero_for_hopeless_prefixes() -> None:
    # A quarter of the records have rate 0. A plain sigmoid never reaches 0, so the
    # conformal shift must push every bound towards 0 and still misses them; the
    # stretched one gives them exactly 0 and keeps useful bounds elsewhere.
    raw, successes = _hopeless_below(0.3, 600, seed=0)
    test_raw, test_successes = _hopeless_below(0.3, 3000, seed=1)
    rates = test_successes / 8
    results = {}
    for margin in (0.01, 0.0):
        calibrator = QuantileCalibrator(conformal_coverage=0.9, output_margin=margin)
        calibrator.fit(raw, None, successes, np.full(600, 8))
        lower = calibrator.predict_quantiles(test_raw)[:, 0]
        results[margin] = (quantile_coverage(lower, rates), lower)
    coverage, lower = results[0.01]
    assert 0.85 <= coverage <= 0.95
    assert np.all(lower[test_raw < 0.2] == 0.0)
    assert lower[test_raw > 0.5].mean() > 0.3
    plain_coverage, plain_lower = results[0.0]
    assert plain_coverage < 0.8 and plain_lower[test_raw > 0.5].mean() < 0.05


def test_fit_is_reproducible_with_a_seed(small_data: Synthetic) -> None:
    def fit(seed: int) -> np.ndarray:
        calibrator = QuantileCalibrator(seed=seed, epochs=60, conformal_coverage=0.9)
        return calibrator.fit_records(small_data.records).predict_quantiles(
            small_data.raw, small_data.features
        )

    state = torch.random.get_rng_state()
    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.array_equal(fit(3), fit(4))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched


def test_conformal_split_is_by_question(small_data: Synthetic) -> None:
    calibrator = QuantileCalibrator(conformal_coverage=0.9, epochs=5)
    data = calibrator._validate_fit_data(
        small_data.raw,
        small_data.features,
        small_data.successes,
        small_data.trials,
        small_data.groups,
    )
    train, held = calibrator._conformal_split(data)
    assert not set(small_data.groups[train]) & set(small_data.groups[held])
    assert len(train) + len(held) == len(small_data.raw)
    assert 0.15 <= len(held) / len(small_data.raw) <= 0.4
    with pytest.raises(CalibrationError, match="at least two questions"):
        calibrator.fit(
            small_data.raw,
            None,
            small_data.successes,
            small_data.trials,
            groups=["one"] * len(small_data.raw),
        )


def test_features_are_used_when_given_and_required_after(small_data: Synthetic) -> None:
    with_features = QuantileCalibrator(epochs=20).fit_records(small_data.records)
    assert with_features.uses_features
    with pytest.raises(CalibrationError, match="fitted with features"):
        with_features.predict([0.5])
    with pytest.raises(CalibrationError, match="expected 2 feature columns"):
        with_features.predict([0.5], [[1.0, 2.0, 3.0]])
    without = QuantileCalibrator(epochs=20, use_features=False).fit_records(small_data.records)
    assert not without.uses_features
    assert without.predict([0.5]) == without.predict([0.5], [[9.0, 9.0]])


@pytest.mark.parametrize("hidden", [0, 8])
def test_save_load_round_trip(small_data: Synthetic, tmp_path: Path, hidden: int) -> None:
    calibrator = QuantileCalibrator(
        hidden=hidden,
        epochs=30,
        levels=(0.05, 0.1, 0.5),
        conformal_coverage=0.8,
        metadata={"policy": "SmolLM2"},
    ).fit_records(small_data.records)
    calibrator.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["kind"] == "quantile"
    assert config["hyperparameters"]["hidden"] == hidden
    assert "device" not in config["hyperparameters"]
    loaded = Calibrator.load(tmp_path, expect={"policy": "SmolLM2"})
    assert isinstance(loaded, QuantileCalibrator)
    assert loaded == calibrator
    assert loaded.conformal_shift == calibrator.conformal_shift
    np.testing.assert_array_equal(
        loaded.predict_quantiles(small_data.raw, small_data.features),
        calibrator.predict_quantiles(small_data.raw, small_data.features),
    )


def test_load_rejects_weights_of_another_shape(small_data: Synthetic, tmp_path: Path) -> None:
    QuantileCalibrator(hidden=8, epochs=5).fit_records(small_data.records).save(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["hyperparameters"]["hidden"] = 16
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CalibrationError, match="do not fit hidden=16"):
        Calibrator.load(tmp_path)
    config["hyperparameters"]["hidden"] = 8
    config["feature_names"] = ["a", "b", "c"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CalibrationError, match="has 3 inputs"):
        Calibrator.load(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"garbage")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibrator.load(tmp_path)


def test_a_saved_quantile_calibrator_predicts_without_torch(tmp_path: Path) -> None:
    data = make_synthetic(n_questions=30, seed=5)
    QuantileCalibrator(epochs=30).fit_records(data.records).save(tmp_path / "q")
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "import langchain_adaptive.calibration as c\n"
        "from langchain_adaptive.prm import CalibratedPRM\n"
        "c.PlattCalibrator, c.evaluate, c.IdentityCalibrator().predict([0.5])\n"
        f"loaded = c.Calibrator.load({str(tmp_path / 'q')!r})\n"
        "estimate = loaded.predict([0.7], [[1.0, 3.0]])[0]\n"
        "assert 0.0 <= estimate.lower <= estimate.median <= 1.0\n"
        "try:\n"
        "    c.QuantileCalibrator().fit([0.5] * 30, None, [1] * 30, [2] * 30)\n"
        "except ImportError as error:\n"
        "    assert 'langchain-adaptive[calibration]' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('fitting without torch did not raise ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_mean_head_is_the_better_point_estimate(
    train_data: Synthetic, held_out: Synthetic
) -> None:
    """With many zero rates the median sits low; the learnt mean scores a lower Brier."""
    from langchain_adaptive.calibration.metrics import brier_score

    calibrator = QuantileCalibrator(seed=0).fit_records(train_data.records)
    test = held_out
    mean = calibrator.predict_mean(test.raw, test.features)
    median = calibrator.predict_quantiles(test.raw, test.features)[:, 1]
    assert brier_score(mean, test.successes, test.trials) <= brier_score(
        median, test.successes, test.trials
    )
    estimate = calibrator.predict(test.raw[:1], test.features[:1])[0]
    assert estimate.mean == pytest.approx(mean[0]) and estimate.expected == estimate.mean


def test_without_the_mean_head_the_point_is_the_median(
    train_data: Synthetic, held_out: Synthetic
) -> None:
    calibrator = QuantileCalibrator(seed=0, fit_mean=False, epochs=50)
    calibrator.fit_records(train_data.records)
    test = held_out
    assert calibrator.predict(test.raw[:1], test.features[:1])[0].mean is None
    np.testing.assert_allclose(
        calibrator.predict_mean(test.raw, test.features),
        calibrator.predict_quantiles(test.raw, test.features)[:, 1],
    )


# -- the Platt start, its regularisation, and selection by cross-validation --------------


@pytest.fixture(scope="module")
def medium_data() -> Synthetic:
    return make_synthetic(n_questions=60, seed=7)


@pytest.mark.parametrize("hidden", [0, 8])
def test_the_head_starts_as_platt_scaling(medium_data: Synthetic, hidden: int) -> None:
    from langchain_adaptive.calibration import PlattCalibrator

    data = medium_data
    platt = PlattCalibrator().fit_records(data.records)
    # One step of a vanishing learning rate: the head is still at its start.
    start = QuantileCalibrator(hidden=hidden, epochs=1, learning_rate=1e-9)
    start.fit_records(data.records)
    np.testing.assert_allclose(
        start.predict_mean(data.raw, data.features), platt.predict_mean(data.raw), atol=1e-4
    )
    # Each quantile is Platt's logit shifted to cover its share of the training rates.
    quantiles = start.predict_quantiles(data.raw, data.features)
    order = np.argsort(data.raw)
    for j, level in enumerate(start.levels):
        assert np.all(np.diff(quantiles[order, j]) >= -1e-6)  # rises with the score
        assert quantile_coverage(quantiles[:, j] - 1e-6, data.rates) >= 1 - level
        assert quantile_coverage(quantiles[:, j] + 1e-6, data.rates) <= 1 - level + 0.05
    legacy = QuantileCalibrator(hidden=hidden, epochs=1, learning_rate=1e-9, platt_init=False)
    legacy.fit_records(data.records)
    assert (
        np.abs(legacy.predict_mean(data.raw, data.features) - platt.predict_mean(data.raw)).max()
        > 0.05
    )


def test_weight_decay_holds_the_head_at_platt(medium_data: Synthetic, held_out: Synthetic) -> None:
    from langchain_adaptive.calibration import PlattCalibrator

    platt = PlattCalibrator().fit_records(medium_data.records).predict_mean(held_out.raw)
    gaps = {}
    for decay in (0.0, 10.0):
        calibrator = QuantileCalibrator(hidden=16, weight_decay=decay, epochs=150)
        mean = calibrator.fit_records(medium_data.records).predict_mean(
            held_out.raw, held_out.features
        )
        gaps[decay] = np.abs(mean - platt).max()
    assert gaps[10.0] < 0.02 < gaps[0.0]


def _step_data(n_questions: int, seed: int) -> Synthetic:
    """The conftest's records with success driven by the step index, not the raw score."""
    base = make_synthetic(n_questions=n_questions, seed=seed)
    rng = np.random.default_rng(seed + 100)
    step = base.features[:, 0]
    true_p = np.where(step >= 2, 0.8, 0.1)
    successes = rng.binomial(base.trials.astype(int), true_p).astype(float)
    records = [
        record.model_copy(update={"successes": int(s)})
        for record, s in zip(base.records, successes, strict=True)
    ]
    return Synthetic(base.raw, base.features, successes, base.trials, base.groups, true_p, records)


def _fast_cv(**overrides: object) -> QuantileCalibrator:
    settings: dict[str, object] = {
        "select_by_cv": True,
        "cv_folds": 3,
        "epochs": 100,
        "cv_grid": {"hidden": (0,), "use_features": (False, True)},
    }
    return QuantileCalibrator(**(settings | overrides))


def test_select_by_cv_uses_features_only_when_they_help(medium_data: Synthetic) -> None:
    noise = _fast_cv().fit_records(medium_data.records)  # features are noise here
    assert noise.use_features is False and not noise.uses_features
    assert [params for params, _ in noise.cv_results] == [
        {"hidden": 0, "use_features": False},
        {"hidden": 0, "use_features": True},
    ]
    signal = _fast_cv().fit_records(_step_data(60, seed=8).records)
    assert signal.use_features is True and signal.uses_features
    scores = dict((params["use_features"], score) for params, score in signal.cv_results)
    assert scores[True] < scores[False]


def test_the_one_standard_error_rule_prefers_the_first_within_noise() -> None:
    from langchain_adaptive.calibration._quantile import _one_standard_error_choice

    simple = np.array([1.00, 1.10, 0.90, 1.00])
    noisy_gain = np.array([0.90, 1.15, 0.80, 1.05])  # better on average, not on every fold
    steady_gain = simple - 0.05  # better on every fold by the same amount
    assert _one_standard_error_choice([simple, noisy_gain]) == 0
    assert _one_standard_error_choice([simple, steady_gain]) == 1
    assert _one_standard_error_choice([steady_gain, simple]) == 0


def test_select_by_cv_folds_keep_questions_whole(small_data: Synthetic) -> None:
    calibrator = _fast_cv(cv_folds=4)
    data = calibrator._validate_fit_data(
        small_data.raw,
        small_data.features,
        small_data.successes,
        small_data.trials,
        small_data.groups,
    )
    folds = calibrator._cv_split(data)
    assert len(folds) == 4
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(len(small_data.raw)))  # each example held out once
    for train, held_index in folds:
        assert not set(small_data.groups[train]) & set(small_data.groups[held_index])


def test_select_by_cv_saves_the_choice(medium_data: Synthetic, tmp_path: Path) -> None:
    calibrator = _fast_cv(cv_grid={"hidden": (0, 4), "weight_decay": (1.0,)})
    calibrator.fit_records(medium_data.records).save(tmp_path)
    loaded = Calibrator.load(tmp_path)
    assert isinstance(loaded, QuantileCalibrator)
    assert len(calibrator.cv_results) == 2
    assert calibrator.hidden in (0, 4) and calibrator.weight_decay == 1.0
    assert (loaded.hidden, loaded.weight_decay) == (calibrator.hidden, 1.0)
    assert loaded.cv_results == []  # the search is not saved, its result is
    np.testing.assert_array_equal(
        loaded.predict_quantiles(medium_data.raw, medium_data.features),
        calibrator.predict_quantiles(medium_data.raw, medium_data.features),
    )


def test_cv_conformal_shift_covers_held_out_questions(
    train_data: Synthetic, held_out: Synthetic
) -> None:
    # Out-of-fold residuals stand in for the final head's only if training converges.
    calibrator = _fast_cv(conformal_coverage=0.9, cv_grid={"hidden": (0,)}, cv_folds=5, epochs=300)
    calibrator.fit_records(train_data.records)
    lower = calibrator.predict_quantiles(held_out.raw, held_out.features)[:, 0]
    assert 0.86 <= quantile_coverage(lower, held_out.rates) <= 0.94
    assert calibrator.conformal_shift != 0.0


def test_cv_grid_is_checked() -> None:
    with pytest.raises(ValueError, match="may vary"):
        QuantileCalibrator(cv_grid={"levels": ((0.1, 0.5),)})
    with pytest.raises(ValueError, match="at least one value"):
        QuantileCalibrator(cv_grid={"hidden": ()})
    bad = QuantileCalibrator(select_by_cv=True, cv_grid={"hidden": (-1,)}, epochs=5)
    with pytest.raises(CalibrationError, match="invalid cv_grid candidate"):
        bad.fit(np.linspace(0, 1, 40), None, np.ones(40), np.full(40, 2.0))


def test_heads_without_a_skip_layer_still_load(small_data: Synthetic, tmp_path: Path) -> None:
    legacy = QuantileCalibrator(hidden=8, epochs=20, platt_init=False)
    legacy.fit_records(small_data.records).save(tmp_path / "legacy")
    config = json.loads((tmp_path / "legacy" / CONFIG_NAME).read_text())
    for field in ("platt_init", "select_by_cv", "cv_folds", "cv_grid"):  # as older versions wrote
        del config["hyperparameters"][field]
    (tmp_path / "legacy" / CONFIG_NAME).write_text(json.dumps(config))
    loaded = Calibrator.load(tmp_path / "legacy")
    np.testing.assert_array_equal(
        loaded.predict_quantiles(small_data.raw, small_data.features),
        legacy.predict_quantiles(small_data.raw, small_data.features),
    )
    current = QuantileCalibrator(hidden=8, epochs=20).fit_records(small_data.records)
    assert {"skip.weight", "skip.bias"} <= set(current._weights or {})
    current.save(tmp_path / "current")
    assert Calibrator.load(tmp_path / "current") == current

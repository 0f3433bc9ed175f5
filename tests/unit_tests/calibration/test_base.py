"""Tests for langchain_adaptive.calibration._base: validation, the identity, persistence."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError
from safetensors.numpy import load_file, save_file

from langchain_adaptive.calibration import (
    Calibrator,
    HistogramBinningCalibrator,
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
)
from langchain_adaptive.calibration._base import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    FitData,
    check_arrays,
)
from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.prm import CalibratedPRM
from tests.unit_tests.calibration.conftest import Synthetic
from tests.unit_tests.fakes import ScriptedPRM


class SpyCalibrator(Calibrator):
    """Records what fit received; predicts the raw score (a test-only kind)."""

    kind: ClassVar[str | None] = "test-spy"

    _seen: FitData | None = None

    def _fit(self, data: FitData) -> None:
        self._seen = data

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        return np.repeat(raw_scores[:, None], len(self.levels), axis=1)

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        check_arrays(arrays, {})


def _fitted_kinds(data: Synthetic) -> dict[str, Calibrator]:
    args = (data.raw, data.features, data.successes, data.trials)
    return {
        "identity": IdentityCalibrator(),
        "platt": PlattCalibrator(metadata={"policy": "SmolLM2", "prm": "judge"}).fit(*args),
        "isotonic": IsotonicCalibrator().fit(*args),
        "histogram": HistogramBinningCalibrator(n_bins=7).fit(*args),
        "histogram-width": HistogramBinningCalibrator(strategy="equal_width").fit(*args),
        "platt-levels": PlattCalibrator(levels=(0.05, 0.5), interval_trials=20).fit(*args),
    }


# -- the identity ------------------------------------------------------------------------


def test_identity_is_a_point_estimate_without_fitting() -> None:
    estimate = IdentityCalibrator().predict([0.25, 1.0])
    assert estimate[0].quantiles == {0.1: 0.25, 0.5: 0.25, 0.9: 0.25}
    assert estimate[0].raw_score == 0.25
    assert estimate[1].lower == 1.0


@pytest.mark.parametrize(
    ("scores", "features", "message"),
    [
        ([float("nan")], None, "NaN"),
        ([1.5], None, r"\[0, 1\]"),
        ([0.5, 0.5], [[1.0, 2.0]], "1 feature rows for 2"),
        ([0.5], [[float("inf"), 1.0]], "NaN or infinite"),
        ([[0.5]], None, "one-dimensional"),
        (["x"], None, "numbers"),
    ],
)
def test_predict_rejects_bad_input(scores: Any, features: Any, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        IdentityCalibrator().predict(scores, features)


def test_predict_on_nothing_is_nothing(train_data: Synthetic) -> None:
    platt = PlattCalibrator().fit(train_data.raw, None, train_data.successes, train_data.trials)
    assert platt.predict([]) == []
    assert platt.predict_quantiles([], []).shape == (0, 3)


# -- fit validation ----------------------------------------------------------------------


def _fit_args(n: int = 30) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "raw_scores": rng.uniform(size=n),
        "features": rng.normal(size=(n, 2)),
        "successes": np.full(n, 3.0),
        "trials": np.full(n, 8.0),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"raw_scores": np.r_[np.nan, np.full(29, 0.5)]}, "NaN"),
        ({"raw_scores": np.full(29, 0.5)}, "30 successes for 29 raw scores"),
        ({"trials": np.full(31, 8.0)}, "31 trials for 30"),
        ({"successes": np.r_[np.nan, np.full(29, 1.0)]}, "NaN"),
        ({"trials": np.r_[0.0, np.full(29, 8.0)]}, "trials >= 1"),
        ({"successes": np.r_[9.0, np.full(29, 1.0)]}, "between 0 and trials"),
        ({"successes": np.r_[-1.0, np.full(29, 1.0)]}, "between 0 and trials"),
        ({"features": np.ones((30, 3))}, "3 columns but feature_names names 2"),
        ({"features": np.ones((29, 2))}, "29 feature rows for 30"),
        ({"features": np.full((30, 2), np.nan)}, "NaN"),
        ({"features": np.ones(30)}, "two-dimensional"),
        ({"groups": ["q"] * 29}, "29 groups for 30"),
    ],
)
def test_fit_rejects_bad_input(change: dict[str, Any], message: str) -> None:
    args = _fit_args() | change
    groups = args.pop("groups", None)
    with pytest.raises(CalibrationError, match=message):
        PlattCalibrator().fit(**args, groups=groups)


def test_fit_needs_min_examples() -> None:
    args = _fit_args(19)
    with pytest.raises(CalibrationError, match="at least 20 examples"):
        PlattCalibrator().fit(**args)
    assert PlattCalibrator(min_examples=5).fit(**args).is_fitted
    with pytest.raises(CalibrationError, match="at least 20"):
        IsotonicCalibrator().fit_records([])


def test_fit_records_passes_prefix_features_and_question_groups(small_data: Synthetic) -> None:
    spy = SpyCalibrator().fit_records(small_data.records)
    seen = spy._seen
    assert seen is not None
    np.testing.assert_array_equal(seen.features, small_data.features)
    np.testing.assert_array_equal(seen.raw_scores, small_data.raw)
    assert list(seen.groups) == [r.question_id for r in small_data.records]
    np.testing.assert_allclose(seen.success_rates, small_data.rates)


def test_custom_feature_names_allow_other_features() -> None:
    args = _fit_args() | {"features": np.ones((30, 3))}
    spy = SpyCalibrator(feature_names=("a", "b", "c")).fit(**args)
    assert spy.is_fitted


def test_not_fitted_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not fitted"):
        PlattCalibrator().predict([0.5])
    with pytest.raises(CalibrationError, match="not fitted"):
        IsotonicCalibrator().save(tmp_path)


@pytest.mark.parametrize("levels", [(), (0.5, 0.1), (0.0, 0.5), (0.5, 1.0), (0.5, 0.5)])
def test_levels_are_validated(levels: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError):
        PlattCalibrator(levels=levels)


def test_a_kind_is_registered_once() -> None:
    with pytest.raises(TypeError, match="already taken"):

        class Clash(SpyCalibrator):
            kind: ClassVar[str | None] = "platt"


def test_calibrated_prm_applies_a_fitted_calibrator(train_data: Synthetic) -> None:
    platt = PlattCalibrator().fit(train_data.raw, None, train_data.successes, train_data.trials)
    prm = CalibratedPRM(prm=ScriptedPRM(default_p=0.95), calibrator=platt)
    estimate = prm.estimate_question("What is 7 + 8?")
    assert estimate.raw_score == 0.95
    assert estimate.lower < estimate.median < 0.95  # an overconfident PRM is pulled down


# -- persistence -------------------------------------------------------------------------


def test_save_load_round_trip_every_numpy_kind(train_data: Synthetic, tmp_path: Path) -> None:
    grid = np.linspace(0.0, 1.0, 101)
    features = np.ones((101, 2))
    for name, calibrator in _fitted_kinds(train_data).items():
        directory = calibrator.save(tmp_path / name)
        assert sorted(p.name for p in directory.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
        loaded = Calibrator.load(directory)
        assert type(loaded) is type(calibrator)
        assert loaded == calibrator  # fields: levels, hyperparameters, metadata
        np.testing.assert_array_equal(
            loaded.predict_quantiles(grid, features), calibrator.predict_quantiles(grid, features)
        )
        assert type(calibrator).load(directory).levels == calibrator.levels


def test_the_files_are_json_and_safetensors(train_data: Synthetic, tmp_path: Path) -> None:
    platt = _fitted_kinds(train_data)["platt"]
    platt.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["kind"] == "platt"
    assert config["format_version"] == FORMAT_VERSION
    assert config["levels"] == [0.1, 0.5, 0.9]
    assert config["feature_names"] == ["step_index", "log_prefix_chars"]
    assert config["hyperparameters"] == {
        "l2": 1e-3,
        "max_iter": 100,
        "interval_trials": None,
        "min_examples": 20,
        "score_scale": "probability",
    }
    assert config["metadata"] == {"policy": "SmolLM2", "prm": "judge"}
    assert config["base_rate"] == pytest.approx(
        train_data.successes.sum() / train_data.trials.sum()
    )
    arrays = load_file(str(tmp_path / WEIGHTS_NAME))
    assert set(arrays) == {"coef", "interval_trials"}
    assert arrays["interval_trials"][0] == 8.0  # the median trials per example


@pytest.fixture
def saved_platt(train_data: Synthetic, tmp_path: Path) -> Path:
    return _fitted_kinds(train_data)["platt"].save(tmp_path / "platt")


def _edit_config(directory: Path, edit: Any) -> None:
    path = directory / CONFIG_NAME
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "key", ["kind", "format_version", "levels", "feature_names", "hyperparameters"]
)
def test_load_rejects_missing_keys(saved_platt: Path, key: str) -> None:
    _edit_config(saved_platt, lambda config: config.pop(key))
    with pytest.raises(CalibrationError, match=f"lacks required keys: {key}"):
        Calibrator.load(saved_platt)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(kind="nonsense"), "unknown calibrator kind 'nonsense'"),
        (lambda c: c.update(kind=3), "kind must be a string"),
        (lambda c: c.update(format_version=FORMAT_VERSION + 1), "upgrade the package"),
        (lambda c: c.update(format_version="1"), "invalid format_version"),
        (lambda c: c["hyperparameters"].update(momentum=0.9), "invalid hyperparameters"),
        (lambda c: c["hyperparameters"].update(l2=-1), "invalid hyperparameters"),
        (lambda c: c.update(levels=[0.9, 0.1]), "invalid hyperparameters"),
        (lambda c: c.update(hyperparameters=[]), "must be a JSON object"),
        (lambda c: c.update(metadata="SmolLM2"), "metadata must be a JSON object"),
        (lambda c: c.update(kind="isotonic"), "invalid hyperparameters"),  # Platt's l2
        (lambda c: c.update(kind="identity", hyperparameters={}), "arrays do not match"),
    ],
)
def test_load_rejects_bad_configs(saved_platt: Path, edit: Any, message: str) -> None:
    _edit_config(saved_platt, edit)
    with pytest.raises(CalibrationError, match=message):
        Calibrator.load(saved_platt)


def test_load_checks_the_requested_class(saved_platt: Path) -> None:
    with pytest.raises(CalibrationError, match="holds a 'platt' calibrator"):
        IsotonicCalibrator.load(saved_platt)
    assert isinstance(PlattCalibrator.load(saved_platt), PlattCalibrator)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"coef": np.zeros(3), "interval_trials": np.ones(1)}, r"'coef' has shape \(3,\)"),
        ({"coef": np.zeros(2)}, r"missing \['interval_trials'\]"),
        ({"coef": np.zeros(2), "interval_trials": np.ones(1), "x": np.ones(1)}, "unexpected"),
        ({"coef": np.array([np.nan, 0.0]), "interval_trials": np.ones(1)}, "non-finite"),
        ({"coef": np.zeros(2), "interval_trials": np.zeros(1)}, "must be positive"),
    ],
)
def test_load_rejects_bad_arrays(
    saved_platt: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    save_file(arrays, str(saved_platt / WEIGHTS_NAME))
    with pytest.raises(CalibrationError, match=message):
        Calibrator.load(saved_platt)


def test_load_rejects_missing_or_corrupt_files(saved_platt: Path, tmp_path: Path) -> None:
    (saved_platt / WEIGHTS_NAME).write_bytes(b"\x00not a safetensors file")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibrator.load(saved_platt)
    (saved_platt / WEIGHTS_NAME).unlink()
    with pytest.raises(CalibrationError, match=f"no {WEIGHTS_NAME}"):
        Calibrator.load(saved_platt)
    (saved_platt / CONFIG_NAME).write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibrator.load(saved_platt)
    with pytest.raises(CalibrationError, match=f"no {CONFIG_NAME}"):
        Calibrator.load(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"policy": "Llama-3-8B"}, "fitted for policy 'SmolLM2', not 'Llama-3-8B'"),
        ({"policy": "SmolLM2", "prm": "other"}, "fitted for prm 'judge'"),
        ({"dataset": "gsm8k"}, "no 'dataset'"),
    ],
)
def test_load_refuses_a_calibrator_for_another_model(
    saved_platt: Path, expect: dict[str, str], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        Calibrator.load(saved_platt, expect=expect)


def test_load_accepts_matching_metadata(saved_platt: Path) -> None:
    loaded = Calibrator.load(saved_platt, expect={"policy": "SmolLM2", "prm": "judge"})
    assert loaded.metadata == {"policy": "SmolLM2", "prm": "judge"}


def test_a_custom_kind_round_trips(small_data: Synthetic, tmp_path: Path) -> None:
    spy = SpyCalibrator(levels=(0.2, 0.5)).fit_records(small_data.records)
    loaded = Calibrator.load(spy.save(tmp_path))
    assert isinstance(loaded, SpyCalibrator)
    assert loaded.predict([0.3])[0].quantiles == {0.2: 0.3, 0.5: 0.3}


def test_no_pickle_in_the_calibration_package() -> None:
    package = Path(__file__).parents[3] / "langchain_adaptive" / "calibration"
    banned = re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle)\b"
        r"|torch\.load\(|np\.load\(|allow_pickle\s*=\s*True",
        re.MULTILINE,
    )
    sources = list(package.glob("*.py"))
    assert len(sources) >= 6
    for source in sources:
        assert not banned.search(source.read_text()), f"{source.name} may unpickle"


# -- real-valued scores and the base rate ------------------------------------------------


def _logprob_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mean-logprob-like score in (-3, 0): higher is likelier to be right."""
    rng = np.random.default_rng(seed)
    score = -rng.uniform(0.0, 3.0, n)
    correct = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(2.0 * score + 3.0)))
    return score, correct.astype(np.float64)


@pytest.mark.parametrize(
    "calibrator",
    [
        PlattCalibrator(),
        IsotonicCalibrator(),
        HistogramBinningCalibrator(n_bins=5),
        HistogramBinningCalibrator(n_bins=5, strategy="equal_width"),
    ],
    ids=["platt", "isotonic", "histogram", "histogram-width"],
)
def test_real_valued_scores_are_calibrated(calibrator: Calibrator, tmp_path: Path) -> None:
    score, correct = _logprob_data()
    calibrator.fit(score, None, correct, np.ones_like(correct))
    assert calibrator.score_scale == "real"
    grid = np.array([-2.9, -1.5, -0.1, 4.0])  # 4.0: beyond anything fitted, still a score
    medians = calibrator.predict_mean(grid)
    assert np.all(np.diff(medians) >= -1e-12) and medians[-2] > medians[0]
    loaded = Calibrator.load(calibrator.save(tmp_path / "c"))
    assert loaded.score_scale == "real"
    np.testing.assert_array_equal(
        loaded.predict_quantiles(grid), calibrator.predict_quantiles(grid)
    )


def test_platt_on_real_scores_is_logistic_regression_on_the_score() -> None:
    score, correct = _logprob_data(4000, seed=1)
    platt = PlattCalibrator().fit(score, None, correct, np.ones_like(correct))
    assert platt.slope == pytest.approx(2.0, abs=0.3)
    assert platt.intercept == pytest.approx(3.0, abs=0.4)


def test_the_probability_scale_and_the_identity_still_refuse_scores_outside_0_1() -> None:
    score, correct = _logprob_data(40)
    with pytest.raises(CalibrationError, match=r"\[0, 1\].*score_scale='real'"):
        PlattCalibrator(score_scale="probability").fit(score, None, correct, np.ones(40))
    with pytest.raises(CalibrationError, match=r"\[0, 1\]"):
        IdentityCalibrator().fit(score, None, correct, np.ones(40))
    with pytest.raises(ValidationError, match="cannot be 'real'"):
        IdentityCalibrator(score_scale="real")
    fitted = PlattCalibrator().fit(np.linspace(0.0, 1.0, 40), None, correct, np.ones(40))
    assert fitted.score_scale == "probability"
    with pytest.raises(CalibrationError, match=r"\[0, 1\]"):
        fitted.predict([1.5])


class _FailingIsotonic(IsotonicCalibrator):
    def _fit(self, data: FitData) -> None:
        raise CalibrationError("boom")


def test_a_failed_fit_keeps_the_requested_scale() -> None:
    score, correct = _logprob_data(40)
    calibrator = _FailingIsotonic()
    with pytest.raises(CalibrationError, match="boom"):
        calibrator.fit(score, None, correct, np.ones(40))
    assert calibrator.score_scale == "auto" and not calibrator.is_fitted


def test_the_base_rate_is_the_fitted_success_rate_and_survives_saving(tmp_path: Path) -> None:
    score, correct = _logprob_data()
    isotonic = IsotonicCalibrator().fit(score, None, correct, np.ones_like(correct))
    assert isotonic.base_rate == pytest.approx(correct.mean())
    estimate = isotonic.base_estimate()
    assert list(estimate.quantiles.values()) == pytest.approx([correct.mean()] * 3)
    assert estimate.raw_score is None
    directory = isotonic.save(tmp_path / "iso")
    assert Calibrator.load(directory).base_rate == pytest.approx(correct.mean())
    # a file saved before the base rate was recorded: isotonic rebuilds it from its blocks
    _edit_config(directory, lambda config: config.pop("base_rate"))
    assert Calibrator.load(directory).base_rate == pytest.approx(correct.mean())
    assert IdentityCalibrator().base_rate is None
    with pytest.raises(CalibrationError, match="no recorded base rate"):
        IdentityCalibrator().base_estimate()
    _edit_config(directory, lambda config: config.update(base_rate=2.0))
    with pytest.raises(CalibrationError, match="base_rate must be a number"):
        Calibrator.load(directory)

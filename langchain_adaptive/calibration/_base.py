"""Calibrators: map a PRM's raw scores to calibrated success estimates with quantile bounds.

IAS budgets on the lower quantile of the success probability, so an
overconfident PRM under-samples hard questions. A :class:`Calibrator` corrects
that: it is fitted on Monte-Carlo success rates (``successes`` out of
``trials`` rollouts per prefix), predicts quantiles of the success rate, and
is saved as two files that any machine can read without running code:

- ``calibrator.json``: ``kind`` (which class), ``format_version``, ``levels``,
  ``feature_names``, ``hyperparameters`` and an optional ``metadata`` dict (the
  policy model and PRM it was fitted for, so it is not applied to another);
- ``calibrator.safetensors``: the fitted arrays. Never pickle, which would run
  arbitrary code when a downloaded calibrator is loaded.

This module holds the interface, persistence (local and Hugging Face Hub) and
:class:`IdentityCalibrator`; the fitted calibrators live in ``baselines``
(Platt, isotonic, histogram binning) and ``quantile`` (the paper's method).
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from langchain_adaptive.calibration._records import FEATURE_NAMES, CalibrationRecord
from langchain_adaptive.calibration._utils import (
    float_vector,
    import_safetensors,
    quantile_at_level,
)
from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.results import SuccessEstimate

if TYPE_CHECKING:
    from types import ModuleType

CONFIG_NAME = "calibrator.json"
"""The JSON file of a saved calibrator: kind, levels, hyperparameters, metadata."""
WEIGHTS_NAME = "calibrator.safetensors"
"""The safetensors file of a saved calibrator: its fitted arrays."""
FORMAT_VERSION = 1
"""Bumped when the file layout changes; newer files are refused rather than misread."""
DEFAULT_LEVELS = (0.1, 0.5, 0.9)
"""Quantile levels predicted unless told otherwise: the lowest is IAS's lower bound."""

MetadataValue = str | int | float | bool | None
"""What a metadata entry may hold: JSON scalars, so the file stays readable anywhere."""

ScoreScale = Literal["auto", "probability", "real"]
"""What a calibrator's raw scores are: see :attr:`Calibrator.score_scale`."""

_REQUIRED_KEYS = ("kind", "format_version", "levels", "feature_names", "hyperparameters")
_BUILTIN_KINDS = {
    "identity": "langchain_adaptive.calibration._base",
    "platt": "langchain_adaptive.calibration._baselines",
    "isotonic": "langchain_adaptive.calibration._baselines",
    "histogram": "langchain_adaptive.calibration._baselines",
    "quantile": "langchain_adaptive.calibration._quantile",
}
"""Where each built-in kind is defined, so loading imports it (torch only for ``quantile``)."""
_REGISTRY: dict[str, type[Calibrator]] = {}


@dataclass(frozen=True)
class FitData:
    """Validated training data handed to :meth:`Calibrator._fit`.

    Attributes:
        raw_scores: The PRM's raw scores, shape ``(n,)``: probabilities in [0, 1],
            or any finite numbers where the calibrator's ``score_scale`` is ``real``.
        features: Extra inputs, shape ``(n, d)``, or ``None``.
        successes: Successful rollouts per example, shape ``(n,)``.
        trials: Rollouts per example (>= 1), shape ``(n,)``.
        groups: A group id per example (the question), or ``None``; splits that
            must not leak between questions use it.
    """

    raw_scores: np.ndarray
    features: np.ndarray | None
    successes: np.ndarray
    trials: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.raw_scores)

    @property
    def success_rates(self) -> np.ndarray:
        """Empirical success rate per example: ``successes / trials``."""
        return self.successes / self.trials

    def subset(self, index: np.ndarray) -> FitData:
        """The examples at ``index`` (an integer or boolean array)."""
        return FitData(
            raw_scores=self.raw_scores[index],
            features=None if self.features is None else self.features[index],
            successes=self.successes[index],
            trials=self.trials[index],
            groups=None if self.groups is None else self.groups[index],
        )


class Calibrator(BaseModel, ABC):
    """Turns raw PRM scores into calibrated :class:`SuccessEstimate` s.

    Raw scores are probabilities in [0, 1] (a PRM's) or, for calibrators that
    accept them (:attr:`accepts_real_scores`: Platt, isotonic, histogram), any
    finite numbers such as a mean token logprob or a reward model's logit; see
    :attr:`score_scale`.

    Subclasses set ``kind`` (the name written to ``calibrator.json``) and implement
    :meth:`_fit`, :meth:`_predict_quantiles`, :meth:`_state` and :meth:`_set_state`;
    validation, persistence and the hub live here so every calibrator behaves
    the same on bad input.

    Example:
        .. code-block:: python

            from langchain_adaptive.calibration import IsotonicCalibrator

            calibrator = IsotonicCalibrator(metadata={"policy": "SmolLM2-135M"})
            calibrator.fit_records(records)
            calibrator.save("calibrators/smollm2-judge")
            calibrator = Calibrator.load("calibrators/smollm2-judge",
                                         expect={"policy": "SmolLM2-135M"})
            calibrator.predict([0.9], [[1.0, 3.2]])[0].lower
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, validate_assignment=True, extra="forbid"
    )

    kind: ClassVar[str | None] = None
    """Registry name written to ``calibrator.json``; ``None`` for abstract classes."""
    _unsaved_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields that describe where to run, not what was fitted (e.g. ``device``)."""
    accepts_real_scores: ClassVar[bool] = False
    """Whether raw scores may be any finite numbers (``score_scale="real"``), not only
    probabilities; a calibrator that reads a score's logit cannot take them."""

    levels: tuple[float, ...] = DEFAULT_LEVELS
    """Quantile levels predicted, increasing, in (0, 1); the lowest is IAS's lower bound."""
    feature_names: tuple[str, ...] = FEATURE_NAMES
    """Names of the feature columns, in order; a fit checks the column count against it."""
    min_examples: int = Field(default=20, ge=1)
    """A fit on fewer examples is refused: the estimate would be noise."""
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    """Free-form provenance saved with the calibrator, e.g. ``{"policy": ..., "prm": ...}``."""
    score_scale: ScoreScale = "auto"
    """What raw scores are. ``probability``: in [0, 1], and Platt reads their logit.
    ``real``: any finite number, such as a mean token logprob or a reward model's logit
    (Platt reads it as it is); only where :attr:`accepts_real_scores`. ``auto``: the fit
    decides (``probability`` when every score it sees lies in [0, 1], else ``real``) and
    sets this field, so a saved calibrator checks later scores as it was fitted. A
    calibrator saved before this field existed loads as ``auto`` and reads probabilities."""

    _fitted: bool = PrivateAttr(default=False)
    _base_rate: float | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return
        known = _REGISTRY.get(kind)
        if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise TypeError(f"calibrator kind {kind!r} is already taken by {known.__qualname__}")
        _REGISTRY[kind] = cls

    @field_validator("score_scale")
    @classmethod
    def _check_scale(cls, value: ScoreScale) -> ScoreScale:
        if value == "real" and not cls.accepts_real_scores:
            raise ValueError(
                f"{cls.__name__} reads raw scores as probabilities in [0, 1], so its "
                "score_scale cannot be 'real'; squash the scores first or use Platt, "
                "isotonic or histogram calibration"
            )
        return value

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("levels must not be empty")
        if any(not 0.0 < level < 1.0 for level in value):
            raise ValueError(f"levels must lie in (0, 1), got {value}")
        if any(hi <= lo for lo, hi in itertools.pairwise(value)):
            raise ValueError(f"levels must be strictly increasing, got {value}")
        return value

    def __eq__(self, other: object) -> bool:
        # pydantic's __eq__ compares private attributes with ==, which numpy arrays and
        # torch modules do not support; equal means same class, fields and fitted arrays.
        if not isinstance(other, Calibrator):
            return NotImplemented
        if type(other) is not type(self) or self.model_dump() != other.model_dump():
            return False
        if self.is_fitted != other.is_fitted:
            return False
        if not self.is_fitted:
            return True
        mine, theirs = self._state(), other._state()
        return mine.keys() == theirs.keys() and all(
            np.array_equal(mine[name], theirs[name]) for name in mine
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like any unfrozen pydantic model

    # -- fitting ---------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`predict` can be called (after :meth:`fit` or :meth:`load`)."""
        return self._fitted

    @property
    def uses_features(self) -> bool:
        """Whether predictions depend on ``features`` (then predict needs them)."""
        return False

    @property
    def base_rate(self) -> float | None:
        """The success rate of the data it was fitted on (successes over trials), if known.

        What a question estimate that carries no information (a placeholder: a
        scorer that cannot score the question alone) maps to: the chance of a
        sample whose question is unknown. Saved with the calibrator; ``None``
        for the identity and for calibrators saved before it was recorded that
        cannot rebuild it from their arrays.
        """
        return self._base_rate

    def base_estimate(self) -> SuccessEstimate:
        """:attr:`base_rate` as a point estimate at every level (its ``raw_score`` is ``None``).

        Raises:
            CalibrationError: The base rate is unknown (see :attr:`base_rate`).
        """
        rate = self.base_rate
        if rate is None:
            raise CalibrationError(
                f"{type(self).__name__} has no recorded base rate: refit it with this version"
            )
        return SuccessEstimate(
            quantiles=dict.fromkeys(self.levels, rate), raw_score=None, mean=rate
        )

    def fit(
        self,
        raw_scores: Sequence[float] | np.ndarray,
        features: Sequence[Sequence[float]] | np.ndarray | None,
        successes: Sequence[float] | np.ndarray,
        trials: Sequence[float] | np.ndarray,
        *,
        groups: Sequence[str] | np.ndarray | None = None,
    ) -> Self:
        """Fit on Monte-Carlo success rates; returns ``self`` so calls chain.

        Args:
            raw_scores: The PRM's raw score per example: a probability in [0, 1], or
                any finite number where :attr:`score_scale` allows (see there).
            features: Extra inputs per example (``len(feature_names)`` columns), or ``None``.
            successes: Rollouts from the example's prefix that reached the gold answer.
            trials: Rollouts per example (>= 1).
            groups: The question each example belongs to; held-out splits made
                during the fit (conformal calibration) never split a question.

        Returns:
            This calibrator, fitted.

        Raises:
            CalibrationError: NaN or out-of-range scores, mismatched lengths,
                ``trials < 1``, ``successes > trials``, or fewer than
                ``min_examples`` examples.
        """
        data = self._validate_fit_data(raw_scores, features, successes, trials, groups)
        scale = self._fit_scale(data.raw_scores)
        requested = self.score_scale
        self._fitted = False  # a refit that fails half-way must not leave mixed state usable
        self.score_scale = scale  # Platt's _fit reads it
        try:
            self._fit(data)
        except BaseException:
            self.score_scale = requested
            raise
        self._base_rate = float(data.successes.sum() / data.trials.sum())
        self._fitted = True
        return self

    def _fit_scale(self, scores: np.ndarray) -> ScoreScale:
        """The scale a fit on ``scores`` uses: ``auto`` resolved, any other checked."""
        probabilities = bool(np.all((scores >= 0.0) & (scores <= 1.0)))
        if self.score_scale == "auto":
            if probabilities:
                return "probability"
            if not self.accepts_real_scores:
                raise CalibrationError(
                    f"raw scores must be probabilities in [0, 1]: {type(self).__name__} "
                    "reads probabilities only (squash the scores first, or use Platt, "
                    "isotonic or histogram calibration, which take any real score)"
                )
            return "real"
        if self.score_scale == "probability" and not probabilities:
            raise CalibrationError(
                "raw scores must be probabilities in [0, 1] (score_scale='probability'); "
                "set score_scale='real' or 'auto' to calibrate any real score"
            )
        return self.score_scale

    def fit_records(self, records: Sequence[CalibrationRecord]) -> Self:
        """Fit on collected records, with :func:`prefix_features` as the features.

        The question id of each record is its group, so a held-out split made
        inside the fit keeps every question on one side.
        """
        return self.fit(
            [record.raw_score for record in records],
            [record.features for record in records],
            [record.successes for record in records],
            [record.trials for record in records],
            groups=[record.question_id for record in records],
        )

    def _validate_fit_data(
        self,
        raw_scores: Sequence[float] | np.ndarray,
        features: Sequence[Sequence[float]] | np.ndarray | None,
        successes: Sequence[float] | np.ndarray,
        trials: Sequence[float] | np.ndarray,
        groups: Sequence[str] | np.ndarray | None,
    ) -> FitData:
        scores = _check_scores(raw_scores, probabilities=False)  # the scale: _fit_scale
        n = len(scores)
        wins = float_vector(successes, "successes")
        tries = float_vector(trials, "trials")
        for name, array in (("successes", wins), ("trials", tries)):
            if len(array) != n:
                raise CalibrationError(f"got {len(array)} {name} for {n} raw scores")
            if not np.all(np.isfinite(array)):
                raise CalibrationError(f"{name} contain NaN or infinite values")
        if n < self.min_examples:
            raise CalibrationError(f"need at least {self.min_examples} examples to fit, got {n}")
        if np.any(tries < 1):
            raise CalibrationError("every example needs trials >= 1")
        if np.any(wins < 0) or np.any(wins > tries):
            raise CalibrationError("successes must lie between 0 and trials")
        feats = _check_features(features, n)
        if feats is not None and feats.shape[1] != len(self.feature_names):
            raise CalibrationError(
                f"features have {feats.shape[1]} columns but feature_names names "
                f"{len(self.feature_names)} ({', '.join(self.feature_names)}); "
                "set feature_names to describe the columns"
            )
        group_ids = None
        if groups is not None:
            group_ids = np.asarray([str(group) for group in groups], dtype=object)
            if len(group_ids) != n:
                raise CalibrationError(f"got {len(group_ids)} groups for {n} raw scores")
        return FitData(scores, feats, wins, tries, group_ids)

    @abstractmethod
    def _fit(self, data: FitData) -> None:
        """Fit the calibrator's state on validated data."""

    # -- prediction ------------------------------------------------------------------

    def predict(
        self,
        raw_scores: Sequence[float] | np.ndarray,
        features: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> list[SuccessEstimate]:
        """Calibrated estimates, one per raw score.

        Args:
            raw_scores: The PRM's raw scores, on the scale the calibrator was fitted
                on (:attr:`score_scale`).
            features: Extra inputs per score (e.g. :func:`prefix_features`), same
                length; required when :attr:`uses_features` is true.

        Raises:
            CalibrationError: Not fitted, NaN or out-of-range scores, or features
                of the wrong shape.
        """
        quantiles = self.predict_quantiles(raw_scores, features)  # also validates the inputs
        scores = self._checked_scores(raw_scores)
        means = self._checked_means(scores, _check_features(features, len(scores)))
        return [
            SuccessEstimate(
                quantiles=dict(zip(self.levels, row.tolist(), strict=True)),
                raw_score=float(score),
                mean=None if means is None else float(means[i]),
            )
            for i, (score, row) in enumerate(zip(scores, quantiles, strict=True))
        ]

    def predict_mean(
        self,
        raw_scores: Sequence[float] | np.ndarray,
        features: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Point estimates of the success probability: the mean where the calibrator
        learns one, else the quantile at 0.5 (interpolated). What Brier and ECE score."""
        quantiles = self.predict_quantiles(raw_scores, features)  # also validates the inputs
        scores = self._checked_scores(raw_scores)
        means = self._checked_means(scores, _check_features(features, len(scores)))
        if means is not None:
            return means
        return quantile_at_level(quantiles, self.levels, 0.5)

    def _checked_means(self, scores: np.ndarray, features: np.ndarray | None) -> np.ndarray | None:
        """:meth:`_predict_mean` on inputs that :meth:`predict_quantiles` has validated."""
        if len(scores) == 0:
            return None
        means = self._predict_mean(scores, features)
        if means is None:
            return None
        means = np.asarray(means, dtype=np.float64)
        if means.shape != (len(scores),) or not np.all(np.isfinite(means)):
            raise CalibrationError(f"{type(self).__name__} predicted invalid means")
        return np.clip(means, 0.0, 1.0)

    def _predict_mean(
        self, raw_scores: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray | None:
        """Expected success probabilities, for calibrators that learn them; else ``None``."""
        return None

    def predict_quantiles(
        self,
        raw_scores: Sequence[float] | np.ndarray,
        features: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Like :meth:`predict`, as an array of shape ``(n, len(levels))``: cheap for metrics."""
        if not self.is_fitted:
            raise CalibrationError(
                f"{type(self).__name__} is not fitted: call fit() or load() first"
            )
        scores = self._checked_scores(raw_scores)
        feats = _check_features(features, len(scores))
        if len(scores) == 0:
            return np.empty((0, len(self.levels)))
        if self.uses_features:
            if feats is None:
                raise CalibrationError(
                    f"{type(self).__name__} was fitted with features "
                    f"({', '.join(self.feature_names)}): pass them to predict"
                )
            if feats.shape[1] != len(self.feature_names):
                raise CalibrationError(
                    f"expected {len(self.feature_names)} feature columns, got {feats.shape[1]}"
                )
        quantiles = np.asarray(self._predict_quantiles(scores, feats), dtype=np.float64)
        if quantiles.shape != (len(scores), len(self.levels)):
            raise CalibrationError(
                f"{type(self).__name__} returned quantiles of shape {quantiles.shape}, "
                f"expected {(len(scores), len(self.levels))}"
            )
        if not np.all(np.isfinite(quantiles)):
            raise CalibrationError(f"{type(self).__name__} predicted non-finite quantiles")
        # Float noise must never make levels cross: SuccessEstimate rejects that.
        return np.maximum.accumulate(np.clip(quantiles, 0.0, 1.0), axis=1)

    def _checked_scores(self, raw_scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """Scores to predict on, checked against the scale the calibrator was fitted on."""
        return _check_scores(raw_scores, probabilities=self.score_scale != "real")

    @abstractmethod
    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Quantiles of shape ``(n, len(levels))`` for validated, non-empty inputs."""

    # -- persistence -----------------------------------------------------------------

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The fitted arrays to save (numpy; saved with ``safetensors.numpy``)."""

    @abstractmethod
    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore fitted arrays read from disk; check their shapes with :func:`check_arrays`."""

    def _write_arrays(self, path: Path) -> None:
        save_file = import_safetensors("numpy").save_file
        arrays = {name: np.ascontiguousarray(value) for name, value in self._state().items()}
        save_file(arrays, str(path), metadata=self._safetensors_metadata())

    def _read_arrays(self, path: Path) -> None:
        load_file = import_safetensors("numpy").load_file
        self._set_state(load_file(str(path)))

    def _safetensors_metadata(self) -> dict[str, str]:
        return {"kind": str(self.kind), "format_version": str(FORMAT_VERSION)}

    def to_config(self) -> dict[str, Any]:
        """What ``calibrator.json`` holds: everything but the fitted arrays."""
        if self.kind is None:
            raise CalibrationError(f"{type(self).__name__} has no kind, so it cannot be saved")
        special = {"levels", "feature_names", "metadata"}
        hyperparameters = self.model_dump(mode="json", exclude=special | set(self._unsaved_fields))
        config = {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "library": "langchain-adaptive",
            "library_version": _library_version(),
            "levels": list(self.levels),
            "feature_names": list(self.feature_names),
            "hyperparameters": hyperparameters,
            "metadata": dict(self.metadata),
        }
        if self.base_rate is not None:  # optional: older readers ignore it
            config["base_rate"] = self.base_rate
        return config

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``calibrator.json`` and ``calibrator.safetensors`` into ``directory``.

        The directory is created if needed. The JSON is written last (each file
        atomically), so a crash mid-save never leaves a config that points at
        missing arrays.

        Returns:
            The directory.

        Raises:
            CalibrationError: The calibrator is not fitted or has no ``kind``.
        """
        if not self.is_fitted:
            raise CalibrationError(f"{type(self).__name__} is not fitted: nothing to save")
        config = self.to_config()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        weights = path / WEIGHTS_NAME
        partial = path / f".{WEIGHTS_NAME}.partial"
        self._write_arrays(partial)
        os.replace(partial, weights)
        partial = path / f".{CONFIG_NAME}.partial"
        partial.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, path / CONFIG_NAME)
        return path

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        *,
        expect: Mapping[str, MetadataValue] | None = None,
    ) -> Self:
        """Load a calibrator saved by :meth:`save`, of whatever kind the file names.

        Args:
            directory: Holds ``calibrator.json`` and ``calibrator.safetensors``.
            expect: Metadata the calibrator must carry, e.g. ``{"policy": "SmolLM2"}``:
                a calibrator fitted for another policy model or PRM would silently
                give wrong bounds, so a mismatch (or a missing key) is an error.

        Raises:
            CalibrationError: Missing files or keys, an unknown kind, a kind that
                is not a ``cls``, a newer format, arrays of the wrong shape, or
                metadata that does not match ``expect``.
        """
        path = Path(directory)
        config = _read_config(path)
        target = _resolve_kind(config["kind"])
        if not issubclass(target, cls):
            raise CalibrationError(
                f"{path} holds a {config['kind']!r} calibrator ({target.__name__}), "
                f"not a {cls.__name__}"
            )
        fields = dict(config["hyperparameters"])
        fields.update(
            levels=config["levels"],
            feature_names=config["feature_names"],
            metadata=config.get("metadata") or {},
        )
        try:
            calibrator = target.model_validate(fields)
        except ValidationError as error:
            raise CalibrationError(
                f"invalid hyperparameters in {path / CONFIG_NAME}: {error}"
            ) from error
        except RecursionError:  # a value nested deeper than validation recurses
            raise CalibrationError(
                f"invalid hyperparameters in {path / CONFIG_NAME}: nested too deeply"
            ) from None
        calibrator.check_metadata(expect)
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise CalibrationError(f"no {WEIGHTS_NAME} in {path}")
        try:
            calibrator._read_arrays(weights)
        except CalibrationError:
            raise
        except Exception as error:  # safetensors and torch raise their own types
            raise CalibrationError(
                f"cannot read {weights}: {type(error).__name__}: {error}"
            ) from error
        calibrator._base_rate = _config_base_rate(config, path)
        if calibrator._base_rate is None:
            calibrator._base_rate = calibrator._derived_base_rate()
        calibrator._fitted = True
        return calibrator

    def _derived_base_rate(self) -> float | None:
        """The base rate rebuilt from fitted arrays, for files saved before it was recorded."""
        return None

    def check_metadata(self, expect: Mapping[str, MetadataValue] | None) -> None:
        """Raise :class:`CalibrationError` unless every ``expect`` entry matches metadata."""
        for key, wanted in (expect or {}).items():
            if key not in self.metadata:
                raise CalibrationError(
                    f"calibrator metadata has no {key!r} to check against {wanted!r}; "
                    f"it records {sorted(self.metadata) or 'nothing'}"
                )
            if self.metadata[key] != wanted:
                raise CalibrationError(
                    f"calibrator was fitted for {key} {self.metadata[key]!r}, not {wanted!r}: "
                    "refit it for this model"
                )

    # -- Hugging Face Hub ------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        endpoint: str | None = None,
        expect: Mapping[str, MetadataValue] | None = None,
    ) -> Self:
        """Load from a local directory, or from a Hugging Face Hub repository.

        A path to an existing directory is loaded directly. Anything else is a
        hub repo id, downloaded with ``huggingface_hub.snapshot_download`` (only
        the two calibrator files) into the usual cache. With
        ``local_files_only=True``, or ``HF_HUB_OFFLINE=1`` in the environment,
        only the local cache is read.

        Args:
            repo_id_or_path: A directory, or a repo id such as ``"owner/name"``.
            revision: A branch, tag or commit of the repository.
            cache_dir: The hub cache (default: huggingface_hub's).
            local_files_only: Read the cache only, never the network.
            token: A hub token for private repositories.
            endpoint: Another hub endpoint (a mirror or a private hub).
            expect: Metadata the calibrator must carry; see :meth:`load`.

        Raises:
            CalibrationError: Nothing found (with how to fix it), a download
                failure, or any error of :meth:`load`.
            ImportError: ``huggingface_hub`` is not installed (only for repo ids).
        """
        path = Path(repo_id_or_path).expanduser()
        if path.is_dir():
            return cls.load(path, expect=expect)
        text = os.fspath(repo_id_or_path)
        if isinstance(repo_id_or_path, os.PathLike) or text.startswith(("/", ".", "~", "\\")):
            raise CalibrationError(f"no calibrator directory at {path}")
        hub = _import_hub()
        try:
            folder = hub.snapshot_download(
                repo_id=text,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                endpoint=endpoint,
                allow_patterns=[CONFIG_NAME, WEIGHTS_NAME],
                library_name="langchain-adaptive",
                library_version=_library_version(),
            )
        except hub.errors.LocalEntryNotFoundError as error:
            where = f" in {cache_dir}" if cache_dir is not None else ""
            hint = (
                "it was never downloaded: run once with network access (local_files_only=False, "
                "HF_HUB_OFFLINE unset)"
                if local_files_only
                else "the hub could not be reached and no cached copy exists"
            )
            raise CalibrationError(
                f"calibrator {text!r} (revision {revision or 'main'}) is not in the local "
                f"Hugging Face cache{where}: {hint}"
            ) from error
        except hub.errors.HFValidationError as error:
            raise CalibrationError(
                f"{text!r} is neither a calibrator directory nor a hub repo id: {error}"
            ) from error
        except Exception as error:  # repository/revision not found, HTTP and network errors
            raise CalibrationError(
                f"cannot download calibrator {text!r}: {type(error).__name__}: {error}"
            ) from error
        if not (Path(folder) / CONFIG_NAME).is_file():
            raise CalibrationError(
                f"hub repository {text!r} has no {CONFIG_NAME}: it does not hold a calibrator"
            )
        return cls.load(folder, expect=expect)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        private: bool = False,
        commit_message: str = "Upload calibrator with langchain-adaptive",
        revision: str | None = None,
        endpoint: str | None = None,
    ) -> str:
        """Upload this calibrator (and a short model card) to a hub repository.

        The repository is created if it does not exist. The files are those of
        :meth:`save`, so :meth:`from_pretrained` reads them back.

        Args:
            repo_id: ``"owner/name"``.
            token: A hub token with write access (default: the logged-in one).
            private: Create the repository private.
            commit_message: The commit's message.
            revision: The branch to commit to (default: the main branch).
            endpoint: Another hub endpoint (a mirror or a private hub).

        Returns:
            The URL of the commit.

        Raises:
            CalibrationError: Not fitted, or the hub refused or could not be reached.
            ImportError: ``huggingface_hub`` is not installed.
        """
        hub = _import_hub()
        api = hub.HfApi(endpoint=endpoint, token=token)
        with tempfile.TemporaryDirectory(prefix="langchain-adaptive-") as tmp:
            self.save(tmp)
            (Path(tmp) / "README.md").write_text(self._model_card(repo_id), encoding="utf-8")
            try:
                api.create_repo(repo_id, private=private, exist_ok=True)
                info = api.upload_folder(
                    repo_id=repo_id,
                    folder_path=tmp,
                    commit_message=commit_message,
                    revision=revision,
                )
            except Exception as error:  # HTTP, auth and network errors of either hub client
                raise CalibrationError(
                    f"cannot push calibrator to {repo_id!r}: {type(error).__name__}: {error}"
                ) from error
        return str(info.commit_url)

    def _model_card(self, repo_id: str) -> str:
        metadata = "\n".join(f"- {key}: `{value}`" for key, value in sorted(self.metadata.items()))
        return (
            "---\nlibrary_name: langchain-adaptive\ntags:\n- calibration\n"
            "- process-reward-model\n---\n\n"
            f"# {repo_id}\n\n"
            f"A `{type(self).__name__}` (kind `{self.kind}`) for langchain-adaptive: it maps "
            "a process reward model's raw scores to calibrated quantiles "
            f"{list(self.levels)} of the success probability.\n\n"
            f"{metadata or '- no metadata recorded'}\n\n"
            "```python\nfrom langchain_adaptive.calibration import Calibrator\n\n"
            f'calibrator = Calibrator.from_pretrained("{repo_id}")\n```\n'
        )


class IdentityCalibrator(Calibrator):
    """Trusts the PRM: each raw score becomes a point estimate at every quantile.

    It has nothing to fit, so it is ready at construction; :meth:`fit` only
    validates its inputs.

    Example:
        >>> IdentityCalibrator().predict([0.25])[0].lower
        0.25
    """

    kind: ClassVar[str | None] = "identity"

    @property
    def is_fitted(self) -> bool:
        return True

    @property
    def base_rate(self) -> float | None:
        """``None``: the identity trusts every score, a placeholder's included."""
        return None

    def _fit(self, data: FitData) -> None:
        return None

    def _predict_quantiles(self, raw_scores: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        return np.repeat(raw_scores[:, None], len(self.levels), axis=1)

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        check_arrays(arrays, {})


def check_arrays(
    arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int | str, ...]]
) -> dict[str, int]:
    """Check loaded arrays against expected shapes; return the sizes of the named dims.

    Args:
        arrays: What was read from ``calibrator.safetensors``.
        shapes: Name -> shape, where an ``int`` is a fixed size and a ``str`` a
            named dimension that must be the same wherever it appears.

    Raises:
        CalibrationError: A missing or unexpected array, a wrong shape, or a
            non-finite value.
    """
    missing = sorted(set(shapes) - set(arrays))
    unexpected = sorted(set(arrays) - set(shapes))
    if missing or unexpected:
        raise CalibrationError(
            f"calibrator arrays do not match: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}"
        )
    dims: dict[str, int] = {}
    for name, shape in shapes.items():
        actual = tuple(np.shape(arrays[name]))
        ok = len(actual) == len(shape)
        for want, got in zip(shape, actual, strict=False):
            if isinstance(want, str):
                ok = ok and dims.setdefault(want, got) == got
            else:
                ok = ok and want == got
        if not ok:
            raise CalibrationError(
                f"calibrator array {name!r} has shape {actual}, expected {shape}"
            )
        if not np.all(np.isfinite(np.asarray(arrays[name], dtype=np.float64))):
            raise CalibrationError(f"calibrator array {name!r} holds non-finite values")
    return dims


def _check_scores(raw_scores: Sequence[float] | np.ndarray, *, probabilities: bool) -> np.ndarray:
    scores = float_vector(raw_scores, "raw scores")
    if not np.all(np.isfinite(scores)):
        raise CalibrationError("raw scores contain NaN or infinite values")
    if probabilities and np.any((scores < 0.0) | (scores > 1.0)):
        raise CalibrationError(
            "raw scores must be probabilities in [0, 1]: this calibrator reads probabilities "
            "(fit Platt, isotonic or histogram calibration on the real scores to read those)"
        )
    return scores


def _config_base_rate(config: Mapping[str, Any], path: Path) -> float | None:
    rate = config.get("base_rate")
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise CalibrationError(f"{path / CONFIG_NAME}: base_rate must be a number in [0, 1]")
    return float(rate)


def _check_features(
    features: Sequence[Sequence[float]] | np.ndarray | None, n: int
) -> np.ndarray | None:
    if features is None:
        return None
    try:
        array = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CalibrationError(
            f"features must be a rectangular table of numbers: {error}"
        ) from error
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 0)
    if array.ndim != 2:
        raise CalibrationError(f"features must be two-dimensional, got shape {array.shape}")
    if len(array) != n:
        raise CalibrationError(f"got {len(array)} feature rows for {n} raw scores")
    if not np.all(np.isfinite(array)):
        raise CalibrationError("features contain NaN or infinite values")
    return array


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise CalibrationError(f"no {CONFIG_NAME} in {path}: not a saved calibrator")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CalibrationError(f"cannot read {config_path}: {error}") from error
    except RecursionError:  # nested deeper than the JSON parser recurses: not ours
        raise CalibrationError(f"cannot read {config_path}: JSON nested too deeply") from None
    if not isinstance(config, dict):
        raise CalibrationError(f"{config_path} does not hold a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in config]
    if missing:
        raise CalibrationError(f"{config_path} lacks required keys: {', '.join(missing)}")
    version = config["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CalibrationError(f"{config_path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CalibrationError(
            f"{config_path} has format_version {version}; this langchain-adaptive reads up to "
            f"{FORMAT_VERSION}: upgrade the package"
        )
    if not isinstance(config["hyperparameters"], dict):
        raise CalibrationError(f"{config_path}: hyperparameters must be a JSON object")
    if config.get("metadata") is not None and not isinstance(config["metadata"], dict):
        raise CalibrationError(f"{config_path}: metadata must be a JSON object")
    return config


def _resolve_kind(kind: Any) -> type[Calibrator]:
    if not isinstance(kind, str):
        raise CalibrationError(f"calibrator kind must be a string, got {kind!r}")
    if kind not in _REGISTRY and kind in _BUILTIN_KINDS:
        import_module(_BUILTIN_KINDS[kind])  # registers the class (ImportError if torch lacks)
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = sorted(set(_REGISTRY) | set(_BUILTIN_KINDS))
        raise CalibrationError(
            f"unknown calibrator kind {kind!r} (known: {', '.join(known)}); a custom "
            "calibrator must be imported before it is loaded"
        ) from None


def _library_version() -> str:
    from langchain_adaptive._version import __version__

    return __version__


def _import_hub() -> ModuleType:
    try:
        import huggingface_hub
        import huggingface_hub.errors
    except ImportError as error:
        raise ImportError(
            "loading or pushing calibrators on the Hugging Face Hub needs huggingface_hub: "
            "pip install huggingface-hub"
        ) from error
    return huggingface_hub


__all__ = [
    "CONFIG_NAME",
    "DEFAULT_LEVELS",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "Calibrator",
    "FitData",
    "IdentityCalibrator",
    "MetadataValue",
    "ScoreScale",
    "check_arrays",
]

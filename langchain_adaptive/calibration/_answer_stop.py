"""The answer-level stop rule: how likely is the answer the runnable would return *now* right?

IAS's rule (Park et al. 2025) guarantees that *some* drawn sample is correct
with probability ``C``; the user gets the *selected* one. This model estimates,
from what has been drawn so far, two calibrated probabilities:

- ``correct``: the answer that selection returns now is correct;
- ``gain``: it is wrong now but the answer selection would return at the cap
  is right, i.e. that more samples would turn it into a right one (futility:
  when this is small, more samples are wasted).

Both are logistic regressions on a few features of the drawn samples (see
:data:`FEATURE_NAMES`): the selected answer's support and its supporters'
calibrated scores, the support of the other answers, abstentions and how many
samples were drawn. They are fitted on a calibration split of recorded pools
(:func:`langchain_adaptive.evaluation.stop_rule.fit_answer_stop`) and saved
as safetensors plus JSON, like the calibrators.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_adaptive._selection import SelectionRule, select
from langchain_adaptive.answers import AnswerEquivalence, answers_match, group_answers
from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.results import Candidate

STOP_MODEL_FORMAT = "langchain-adaptive/answer-stop"
STOP_MODEL_VERSION = 1
FEATURE_NAMES = (
    "bias",
    "supporters_mean_logit",
    "supporters",
    "others",
    "abstentions",
    "log_samples",
    "best_other_logit",
)
"""The features, in order: a bias; the mean logit of the selected answer's supporters'
scores; how many samples support it; how many give another answer; how many give
none; log of the samples drawn; the highest logit among the other answers' samples."""
HEADS = ("correct", "gain")
_LOGIT_CLIP = 1e-3
_FLOOR_LOGIT = math.log(_LOGIT_CLIP / (1.0 - _LOGIT_CLIP))


def _logit(p: float) -> float:
    p = min(max(p, _LOGIT_CLIP), 1.0 - _LOGIT_CLIP)
    return math.log(p / (1.0 - p))


def candidate_score(candidate: Candidate) -> float:
    """A candidate's (calibrated) probability of being correct: its last step estimate's
    expected value, else its aggregated score, else 0 (a sample nobody scored)."""
    if candidate.step_estimates:
        return candidate.step_estimates[-1].expected
    return candidate.score if candidate.score is not None else 0.0


def answer_features(
    candidates: Sequence[Candidate],
    selection: SelectionRule = "weighted_vote",
    equivalent: AnswerEquivalence = answers_match,
) -> tuple[int | None, list[float]]:
    """The index of the candidate selection returns now, and the features of the stop rule.

    The same function serves the live strategy and the fit on recorded pools, so
    both see identical inputs.
    """
    if not candidates:
        raise ValueError("answer features need at least one candidate")
    chosen = select(candidates, selection, equivalent=equivalent)
    labels = group_answers([c.answer for c in candidates], equivalent)
    position = next((i for i, c in enumerate(candidates) if c.index == chosen.index), None)
    leader = labels[position] if position is not None else None
    supporters: list[float] = []
    others: list[float] = []
    abstentions = 0
    for candidate, label in zip(candidates, labels, strict=True):
        if label is None:
            abstentions += 1
        elif label == leader:
            supporters.append(_logit(candidate_score(candidate)))
        else:
            others.append(_logit(candidate_score(candidate)))
    features = [
        1.0,
        sum(supporters) / len(supporters) if supporters else _FLOOR_LOGIT,
        float(len(supporters)),
        float(len(others)),
        float(abstentions),
        math.log(len(candidates)),
        max(others, default=_FLOOR_LOGIT),
    ]
    return chosen.index, features


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (the bias is regularised too,
    lightly, so a split with one class still gives a finite fit)."""
    weights = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -30, 30)))
        gradient = x.T @ (p - y) + l2 * weights
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return weights


class StopProbabilities(BaseModel):
    """What the stop rule predicts for the answer returned now."""

    model_config = ConfigDict(frozen=True)

    correct: float = Field(ge=0.0, le=1.0)
    """Calibrated probability that the answer returned now is correct."""
    gain: float = Field(ge=0.0, le=1.0)
    """Calibrated probability that it is wrong now but right at the cap."""


class AnswerStopModel(BaseModel):
    """Two logistic heads over :data:`FEATURE_NAMES`: P(answer right now), P(more samples fix it).

    Example:
        .. code-block:: python

            model = AnswerStopModel(metadata={"scorer": "prm-isotonic"}).fit(features, now, gain)
            model.save("stop-rules/math500")
            AnswerStopModel.load("stop-rules/math500").predict(features[0])
    """

    model_config = ConfigDict(extra="forbid")

    l2: float = Field(default=1.0, gt=0.0)
    """Ridge penalty of both heads: strong enough to fit a few hundred questions stably."""
    selection: SelectionRule = "weighted_vote"
    """The selection rule whose answer the model judges (the strategy must use the same)."""
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Where it was fitted: the pool, the scorer, the split. Checked by nothing; kept for audit."""

    _weights: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @property
    def is_fitted(self) -> bool:
        return set(self._weights) == set(HEADS)

    def fit(
        self,
        features: Sequence[Sequence[float]] | np.ndarray,
        correct_now: Sequence[bool] | np.ndarray,
        gain: Sequence[bool] | np.ndarray,
    ) -> AnswerStopModel:
        """Fit both heads; returns ``self``.

        Raises:
            CalibrationError: Mismatched lengths, a wrong number of feature
                columns, non-finite features, or fewer than 10 examples.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise CalibrationError(
                f"stop-rule features must have {len(FEATURE_NAMES)} columns "
                f"({', '.join(FEATURE_NAMES)}), got shape {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise CalibrationError("stop-rule features contain NaN or infinite values")
        labels = {"correct": np.asarray(correct_now, float), "gain": np.asarray(gain, float)}
        for name, y in labels.items():
            if y.shape != (len(x),):
                raise CalibrationError(f"got {y.shape} {name} labels for {len(x)} examples")
        if len(x) < 10:
            raise CalibrationError(f"need at least 10 examples to fit a stop rule, got {len(x)}")
        self._weights = {name: _fit_logistic(x, y, self.l2) for name, y in labels.items()}
        return self

    def predict(self, features: Sequence[float]) -> StopProbabilities:
        """The two probabilities for one feature row.

        Raises:
            CalibrationError: The model is not fitted or the row has the wrong length.
        """
        if not self.is_fitted:
            raise CalibrationError("the stop rule is not fitted; fit it or load a saved one")
        row = np.asarray(features, dtype=np.float64)
        if row.shape != (len(FEATURE_NAMES),):
            raise CalibrationError(f"expected {len(FEATURE_NAMES)} features, got {row.shape}")
        p = {
            name: float(1.0 / (1.0 + math.exp(-float(np.clip(row @ w, -30, 30)))))
            for name, w in self._weights.items()
        }
        return StopProbabilities(correct=p["correct"], gain=p["gain"])

    def weights(self, head: Literal["correct", "gain"]) -> dict[str, float]:
        """One head's coefficients by feature name (to read what the rule learned)."""
        if not self.is_fitted:
            raise CalibrationError("the stop rule is not fitted")
        return dict(zip(FEATURE_NAMES, map(float, self._weights[head]), strict=True))

    # -- persistence: safetensors + JSON, never pickle ---------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``stop_rule.json`` and ``stop_rule.safetensors`` into ``directory``."""
        from safetensors.numpy import save_file

        if not self.is_fitted:
            raise CalibrationError("cannot save a stop rule that is not fitted")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "format": STOP_MODEL_FORMAT,
            "format_version": STOP_MODEL_VERSION,
            "feature_names": list(FEATURE_NAMES),
            **self.model_dump(),
        }
        save_file({k: v.astype(np.float64) for k, v in self._weights.items()},
                  str(path / "stop_rule.safetensors"))  # fmt: skip
        (path / "stop_rule.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> AnswerStopModel:
        """Load a saved stop rule.

        Raises:
            CalibrationError: Missing files, another format or version, other
                features, or weights of the wrong shape.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(directory)
        try:
            config: Any = json.loads((path / "stop_rule.json").read_text(encoding="utf-8"))
            arrays = load_file(str(path / "stop_rule.safetensors"))
        except (OSError, ValueError, RecursionError, SafetensorError) as error:
            raise CalibrationError(f"{path}: not a saved stop rule ({error})") from error
        if not isinstance(config, dict) or config.get("format") != STOP_MODEL_FORMAT:
            raise CalibrationError(f"{path}: stop_rule.json is not a {STOP_MODEL_FORMAT} file")
        if config.get("format_version") != STOP_MODEL_VERSION:
            raise CalibrationError(
                f"{path}: format version {config.get('format_version')!r}, "
                f"this library reads {STOP_MODEL_VERSION}"
            )
        if config.get("feature_names") != list(FEATURE_NAMES):
            raise CalibrationError(
                f"{path}: fitted on other features {config.get('feature_names')}"
            )
        fields = {k: v for k, v in config.items() if k in cls.model_fields}
        try:
            model = cls.model_validate(fields)
        except ValueError as error:
            raise CalibrationError(f"{path}: invalid stop-rule settings: {error}") from error
        weights = _check_weights(path, arrays)
        model._weights = weights
        return model


def _check_weights(path: Path, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if set(arrays) != set(HEADS):
        raise CalibrationError(f"{path}: expected weights {HEADS}, found {sorted(arrays)}")
    out = {}
    for head in HEADS:
        w = np.asarray(arrays[head], dtype=np.float64)
        if w.shape != (len(FEATURE_NAMES),) or not np.all(np.isfinite(w)):
            raise CalibrationError(f"{path}: weights {head!r} have shape {w.shape} or non-finite")
        out[head] = w
    return out


__all__ = [
    "FEATURE_NAMES",
    "HEADS",
    "AnswerStopModel",
    "StopProbabilities",
    "answer_features",
    "candidate_score",
]

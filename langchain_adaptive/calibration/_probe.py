"""A probe head: success quantiles read off the policy model's own hidden state.

The policy's embedding of a question (or of a question and a solution prefix)
already says much about whether the policy will get it right. A
:class:`ProbeHead` projects that embedding onto its leading principal
components (fitted on the calibration data, so a few hundred examples suffice)
and feeds them, with the prefix features, to a calibrator that predicts
quantiles. An engine integration supplies the embeddings (see
``langchain_adaptive.integrations.llamacpp.ProbePRM``).

With ``uses_score`` the calibrator also reads a PRM's raw score: that is the
paper's quantile calibrator of the PRM with the embedding as its extra feature,
so the embedding adds to what the score alone says. Without it the probe is a
PRM of its own and its calibrator sees a constant in the score's place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_adaptive.calibration._base import Calibrator
from langchain_adaptive.calibration._records import FEATURE_NAMES
from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.results import SuccessEstimate

PROBE_CONFIG = "probe.json"
PROBE_ARRAYS = "probe.safetensors"
CALIBRATOR_DIR = "calibrator"
PROBE_FORMAT_VERSION = 1
"""The version of ``probe.json``; a probe head holds its calibrator in its own format."""
NEUTRAL_SCORE = 0.5
"""A probe without ``uses_score`` has no raw score; its calibrator sees this constant."""


class ProbeHead(BaseModel):
    """PCA projection of embeddings plus a calibrator that predicts success quantiles.

    Example:
        .. code-block:: python

            head = ProbeHead(dims=16, calibrator=QuantileCalibrator(seed=0))
            head.fit(embeddings, features, successes, trials, groups=question_ids)
            head.predict(new_embeddings, new_features)[0].lower
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    calibrator: Calibrator
    """Predicts quantiles from the projected embedding and the prefix features."""
    dims: int = Field(default=16, ge=1)
    """Principal components kept from the embedding."""
    uses_score: bool = False
    """The calibrator also reads a PRM's raw score (pass ``raw_scores`` to fit and predict)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form provenance, e.g. the policy model the embeddings came from."""

    _mean: np.ndarray | None = PrivateAttr(default=None)
    _components: np.ndarray | None = PrivateAttr(default=None)

    @property
    def fitted(self) -> bool:
        return self._components is not None

    @property
    def embedding_size(self) -> int | None:
        return None if self._components is None else int(self._components.shape[0])

    def project(self, embeddings: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """The leading principal components of each embedding."""
        if self._mean is None or self._components is None:
            raise CalibrationError("the probe head is not fitted; call fit() or load()")
        matrix = _as_matrix(embeddings)
        if matrix.shape[1] != self._components.shape[0]:
            raise CalibrationError(
                f"embeddings have {matrix.shape[1]} dimensions but the probe was fitted on "
                f"{self._components.shape[0]}: was it trained for another model?"
            )
        return (matrix - self._mean) @ self._components

    def fit(
        self,
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        features: Sequence[Sequence[float]],
        successes: Sequence[int],
        trials: Sequence[int],
        *,
        raw_scores: Sequence[float] | None = None,
        groups: Sequence[str] | None = None,
    ) -> ProbeHead:
        """Fit the projection on ``embeddings``, then the calibrator on the projected inputs."""
        matrix = _as_matrix(embeddings)
        if len(features) != len(matrix):
            raise CalibrationError(f"{len(features)} feature rows for {len(matrix)} embeddings")
        scores = self._scores(raw_scores, len(matrix))
        if not getattr(self.calibrator, "use_features", self.calibrator.uses_features):
            raise CalibrationError(
                f"{type(self.calibrator).__name__} ignores features, so it cannot read an "
                "embedding; use QuantileCalibrator"
            )
        mean = matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(matrix - mean, full_matrices=False)
        components = vt[: min(self.dims, vt.shape[0])].T.copy()
        self.calibrator.feature_names = (
            *(f"pc{i}" for i in range(components.shape[1])),
            *FEATURE_NAMES,
        )
        inputs = np.hstack([(matrix - mean) @ components, np.asarray(features, dtype=np.float64)])
        self.calibrator.fit(
            scores,
            inputs,
            list(successes),
            list(trials),
            groups=None if groups is None else list(groups),
        )
        # Only a fully fitted head becomes visible: a failed fit leaves the old state.
        self._mean, self._components = mean, components
        return self

    def predict(
        self,
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        features: Sequence[Sequence[float]],
        raw_scores: Sequence[float] | None = None,
    ) -> list[SuccessEstimate]:
        """Calibrated success estimates, one per embedding."""
        matrix = _as_matrix(embeddings)
        scores = self._scores(raw_scores, len(matrix))
        estimates = self.calibrator.predict(scores, self._inputs(matrix, features))
        if self.uses_score:
            return estimates
        # The neutral score is a placeholder, not a PRM score: do not report it as one.
        return [estimate.model_copy(update={"raw_score": None}) for estimate in estimates]

    def _scores(self, raw_scores: Sequence[float] | None, n_rows: int) -> list[float]:
        """The calibrator's score input: the PRM's raw scores, or the neutral constant."""
        if not self.uses_score:
            if raw_scores is not None:
                raise CalibrationError(
                    "this probe head was fitted without a PRM score (uses_score=False); "
                    "do not pass raw_scores"
                )
            return [NEUTRAL_SCORE] * n_rows
        if raw_scores is None:
            raise CalibrationError(
                "this probe head reads a PRM's raw score (uses_score=True); pass raw_scores"
            )
        if len(raw_scores) != n_rows:
            raise CalibrationError(f"{len(raw_scores)} raw scores for {n_rows} embeddings")
        return [float(score) for score in raw_scores]

    def _inputs(self, matrix: np.ndarray, features: Sequence[Sequence[float]]) -> np.ndarray:
        rows = np.asarray(features, dtype=np.float64)
        if rows.ndim != 2 or len(rows) != len(matrix):
            raise CalibrationError(f"{len(rows)} feature rows for {len(matrix)} embeddings")
        return np.hstack([self.project(matrix), rows])

    # -- persistence (JSON + safetensors, never pickle) ----------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``probe.json``, ``probe.safetensors`` and the calibrator's own files."""
        from safetensors.numpy import save_file

        if self._mean is None or self._components is None:
            raise CalibrationError("cannot save an unfitted probe head")
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        save_file(
            {
                "mean": self._mean,
                "components": self._components,
            },
            str(target / PROBE_ARRAYS),
        )
        config = {
            "kind": "probe_head",
            "format_version": PROBE_FORMAT_VERSION,
            "dims": self.dims,
            "uses_score": self.uses_score,
            "metadata": self.metadata,
        }
        self.calibrator.save(target / CALIBRATOR_DIR)
        # The config goes last: a directory with probe.json is a complete head.
        (target / PROBE_CONFIG).write_text(json.dumps(config, indent=2))
        return target

    @classmethod
    def load(cls, directory: str | Path) -> ProbeHead:
        """Read a probe head written by :meth:`save`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        source = Path(directory)
        try:
            config = json.loads((source / PROBE_CONFIG).read_text())
            arrays = load_file(str(source / PROBE_ARRAYS))
        except (OSError, ValueError, SafetensorError) as error:
            raise CalibrationError(f"cannot read a probe head from {source}: {error}") from error
        if (
            not isinstance(config, dict)
            or config.get("kind") != "probe_head"
            or "dims" not in config
        ):
            raise CalibrationError(f"{source / PROBE_CONFIG} is not a probe head config")
        if {"mean", "components"} - set(arrays):
            raise CalibrationError(f"{source / PROBE_ARRAYS} lacks 'mean' or 'components'")
        mean, components = (
            arrays["mean"].astype(np.float64),
            arrays["components"].astype(np.float64),
        )
        if components.ndim != 2 or mean.shape != (components.shape[0],):
            raise CalibrationError(f"{source / PROBE_ARRAYS} has inconsistent shapes")
        if not (np.isfinite(mean).all() and np.isfinite(components).all()):
            raise CalibrationError(f"{source / PROBE_ARRAYS} holds NaN or infinite values")
        if config.get("format_version") != PROBE_FORMAT_VERSION:
            raise CalibrationError(
                f"{source / PROBE_CONFIG} has format_version {config.get('format_version')!r}; "
                f"this version reads {PROBE_FORMAT_VERSION}"
            )
        head = cls(
            calibrator=Calibrator.load(source / CALIBRATOR_DIR),
            dims=int(config["dims"]),
            uses_score=bool(config.get("uses_score", False)),
            metadata=dict(config.get("metadata") or {}),
        )
        head._mean, head._components = mean, components
        return head


def _as_matrix(embeddings: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise CalibrationError(
            f"expected a non-empty 2-D array of embeddings, got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        raise CalibrationError("embeddings contain NaN or infinite values")
    return matrix


__all__ = ["ProbeHead"]

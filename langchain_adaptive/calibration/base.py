"""Calibrators: map a PRM's raw scores to calibrated success estimates with quantile bounds.

IAS budgets on the lower quantile of the success probability, so an
overconfident PRM under-samples hard questions. A :class:`Calibrator` corrects
that. This module holds the interface and the identity calibrator; fitted
calibrators (quantile regression, Platt, isotonic, binning) implement the same
interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from langchain_adaptive.errors import CalibrationError
from langchain_adaptive.results import SuccessEstimate


class Calibrator(BaseModel, ABC):
    """Turns raw PRM scores (probabilities) into calibrated :class:`SuccessEstimate` s."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @abstractmethod
    def predict(
        self,
        raw_scores: Sequence[float],
        features: Sequence[Sequence[float]] | None = None,
    ) -> list[SuccessEstimate]:
        """Calibrated estimates, one per raw score.

        Args:
            raw_scores: The PRM's probabilities in [0, 1].
            features: Optional extra inputs per score (e.g. step index), same length.
        """


class IdentityCalibrator(Calibrator):
    """Trusts the PRM: each raw score becomes a point estimate at every quantile.

    Example:
        >>> IdentityCalibrator().predict([0.25])[0].lower
        0.25
    """

    def predict(
        self,
        raw_scores: Sequence[float],
        features: Sequence[Sequence[float]] | None = None,
    ) -> list[SuccessEstimate]:
        if features is not None and len(features) != len(raw_scores):
            raise CalibrationError(
                f"got {len(features)} feature rows for {len(raw_scores)} raw scores"
            )
        try:
            return [SuccessEstimate.point(float(score)) for score in raw_scores]
        except ValueError as error:
            raise CalibrationError(f"cannot calibrate raw scores: {error}") from error


__all__ = ["Calibrator", "IdentityCalibrator"]

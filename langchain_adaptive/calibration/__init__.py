"""Calibration: turn a PRM's raw scores into calibrated success probabilities with quantiles.

- ``base``: the :class:`Calibrator` interface and :class:`IdentityCalibrator`.
"""

from __future__ import annotations

from langchain_adaptive.calibration.base import Calibrator, IdentityCalibrator

__all__ = ["Calibrator", "IdentityCalibrator"]

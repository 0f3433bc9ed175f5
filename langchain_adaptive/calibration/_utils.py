"""Numeric helpers shared by the calibrators and the metrics (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from types import ModuleType
from typing import Any

import numpy as np

from langchain_adaptive.errors import CalibrationError

SCORE_EPS = 1e-4
"""Raw scores are clipped to [SCORE_EPS, 1 - SCORE_EPS] before a logit, so 0 and 1 stay finite."""


def clipped_logit(probabilities: np.ndarray, eps: float = SCORE_EPS) -> np.ndarray:
    """``log(p / (1 - p))`` of ``p`` clipped to ``[eps, 1 - eps]``."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def quantile_at_level(quantiles: np.ndarray, levels: Sequence[float], level: float) -> np.ndarray:
    """Each row's value at ``level``, interpolated as :meth:`SuccessEstimate.at` does."""
    j = int(np.searchsorted(levels, level))
    if j < len(levels) and levels[j] == level:
        return quantiles[:, j]
    if j == 0:
        return quantiles[:, 0]
    if j == len(levels):
        return quantiles[:, -1]
    weight = (level - levels[j - 1]) / (levels[j] - levels[j - 1])
    return quantiles[:, j - 1] + weight * (quantiles[:, j] - quantiles[:, j - 1])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings for large ``|x|``."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``, stable for large ``|x|``."""
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def float_vector(values: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; :class:`CalibrationError` when it is not one."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CalibrationError(f"{name} must be numbers: {error}") from error
    if array.ndim != 1:
        raise CalibrationError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def import_safetensors(flavour: str) -> ModuleType:
    """``safetensors.numpy`` or ``safetensors.torch``, with an install hint when missing."""
    try:
        return import_module(f"safetensors.{flavour}")
    except ImportError as error:
        raise ImportError(
            "saving and loading calibrators needs safetensors: pip install safetensors"
        ) from error


__all__ = [
    "SCORE_EPS",
    "clipped_logit",
    "float_vector",
    "import_safetensors",
    "quantile_at_level",
    "sigmoid",
    "softplus",
]

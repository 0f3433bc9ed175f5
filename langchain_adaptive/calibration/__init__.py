"""Calibration: turn a PRM's raw scores into calibrated success probabilities with quantiles.

- ``records``: :class:`CalibrationRecord` (one prefix and its Monte-Carlo success
  rate) and :func:`prefix_features`, shared by fitting and run time.
- ``base``: the :class:`Calibrator` interface (fit, predict, save/load, the hub)
  and :class:`IdentityCalibrator`.
- ``baselines``: :class:`PlattCalibrator`, :class:`IsotonicCalibrator`,
  :class:`HistogramBinningCalibrator` (numpy), with Wilson lower bounds.
- ``quantile``: :class:`QuantileCalibrator`, the paper's pinball-loss head (torch).
- ``metrics``: Brier, ECE, pinball loss, coverage, AUROC, :func:`evaluate`, plots.
- ``probe``: :class:`ProbeHead`, success quantiles from the policy's own embedding.

Names are imported on first use, so torch loads only with :class:`QuantileCalibrator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_adaptive._lazy import lazy_exports

if TYPE_CHECKING:
    from langchain_adaptive.calibration._base import Calibrator, IdentityCalibrator
    from langchain_adaptive.calibration._baselines import (
        HistogramBinningCalibrator,
        IsotonicCalibrator,
        PlattCalibrator,
    )
    from langchain_adaptive.calibration._probe import ProbeHead
    from langchain_adaptive.calibration._quantile import QuantileCalibrator
    from langchain_adaptive.calibration._records import (
        FEATURE_NAMES,
        CalibrationRecord,
        prefix_features,
    )
    from langchain_adaptive.calibration.metrics import (
        CalibrationReport,
        CalibratorMetrics,
        auroc,
        brier_score,
        evaluate,
        expected_calibration_error,
        pinball_loss,
        quantile_coverage,
        reliability_diagram,
        report_markdown,
        split_by_question,
    )

_MODULE_OF: dict[str, str] = {
    "FEATURE_NAMES": "_records",
    "CalibrationRecord": "_records",
    "CalibrationReport": "metrics",
    "CalibratorMetrics": "metrics",
    "Calibrator": "_base",
    "HistogramBinningCalibrator": "_baselines",
    "IdentityCalibrator": "_base",
    "IsotonicCalibrator": "_baselines",
    "PlattCalibrator": "_baselines",
    "ProbeHead": "_probe",
    "QuantileCalibrator": "_quantile",
    "auroc": "metrics",
    "brier_score": "metrics",
    "evaluate": "metrics",
    "expected_calibration_error": "metrics",
    "pinball_loss": "metrics",
    "prefix_features": "_records",
    "quantile_coverage": "metrics",
    "reliability_diagram": "metrics",
    "report_markdown": "metrics",
    "split_by_question": "metrics",
}

__all__ = (
    "FEATURE_NAMES",
    "CalibrationRecord",
    "CalibrationReport",
    "Calibrator",
    "CalibratorMetrics",
    "HistogramBinningCalibrator",
    "IdentityCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "ProbeHead",
    "QuantileCalibrator",
    "auroc",
    "brier_score",
    "evaluate",
    "expected_calibration_error",
    "pinball_loss",
    "prefix_features",
    "quantile_coverage",
    "reliability_diagram",
    "report_markdown",
    "split_by_question",
)


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF, __all__)

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
    from langchain_adaptive.calibration.base import Calibrator, IdentityCalibrator
    from langchain_adaptive.calibration.baselines import (
        HistogramBinningCalibrator,
        IsotonicCalibrator,
        PlattCalibrator,
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
    from langchain_adaptive.calibration.probe import ProbeHead
    from langchain_adaptive.calibration.quantile import QuantileCalibrator
    from langchain_adaptive.calibration.records import (
        FEATURE_NAMES,
        CalibrationRecord,
        prefix_features,
    )

_MODULE_OF: dict[str, str] = {
    "FEATURE_NAMES": "records",
    "CalibrationRecord": "records",
    "CalibrationReport": "metrics",
    "CalibratorMetrics": "metrics",
    "Calibrator": "base",
    "HistogramBinningCalibrator": "baselines",
    "IdentityCalibrator": "base",
    "IsotonicCalibrator": "baselines",
    "PlattCalibrator": "baselines",
    "ProbeHead": "probe",
    "QuantileCalibrator": "quantile",
    "auroc": "metrics",
    "brier_score": "metrics",
    "evaluate": "metrics",
    "expected_calibration_error": "metrics",
    "pinball_loss": "metrics",
    "prefix_features": "records",
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

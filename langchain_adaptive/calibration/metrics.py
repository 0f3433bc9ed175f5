"""How good is a calibrator? Brier, ECE, pinball loss, quantile coverage, AUROC, plots.

Every metric is computed on held-out questions: :func:`split_by_question` keeps
all prefixes of a question on one side, since prefixes of one question share
their answer and would leak it. A record's ``successes`` out of ``trials``
rollouts count as that many binary outcomes for the point-estimate metrics
(Brier, ECE); the quantile metrics (pinball loss, coverage) compare each
record's success rate with the predicted quantile, one record one vote.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from langchain_adaptive.calibration._utils import float_vector, quantile_at_level
from langchain_adaptive.calibration.base import DEFAULT_LEVELS, Calibrator
from langchain_adaptive.calibration.records import CalibrationRecord
from langchain_adaptive.errors import CalibrationError

ECE_BINS = 15
"""Equal-width bins of the expected calibration error (the paper's and the issue's choice)."""
RAW = "raw"
"""The report row of the uncalibrated PRM: its raw scores as point estimates."""


# -- metrics on arrays -------------------------------------------------------------------


def brier_score(
    probabilities: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
) -> float:
    """Mean squared error of ``probabilities`` over every rollout outcome.

    A record with ``s`` successes out of ``t`` is ``t`` binary outcomes:
    ``sum_i [s_i (1 - p_i)^2 + (t_i - s_i) p_i^2] / sum_i t_i``.

    Example:
        >>> brier_score([0.5, 1.0], [1, 2], [2, 2])
        0.125
    """
    p, s, t = _outcomes(probabilities, successes, trials)
    return float(np.sum(s * (1.0 - p) ** 2 + (t - s) * p**2) / np.sum(t))


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    n_bins: int = ECE_BINS,
) -> float:
    """Trial-weighted mean gap between predicted and observed success per probability bin.

    Bins are ``n_bins`` equal widths of [0, 1] (1.0 falls in the last); each
    record counts with its ``trials`` outcomes.

    Example:
        >>> round(expected_calibration_error([0.2, 0.8], [0, 2], [2, 2]), 6)
        0.2
    """
    p, s, t = _outcomes(probabilities, successes, trials)
    bins = reliability_bins(p, s, t, n_bins)
    gaps = sum(b.trials * abs(b.observed_rate - b.mean_predicted) for b in bins)
    return float(gaps / np.sum(t))


def pinball_loss(
    predicted: Sequence[float] | np.ndarray,
    success_rates: Sequence[float] | np.ndarray,
    level: float,
) -> float:
    """Mean pinball (quantile) loss of ``predicted`` quantiles at ``level`` of the rates.

    ``rho(u) = level * u`` for ``u = rate - predicted >= 0``, ``(level - 1) * u`` otherwise:
    the loss a correct ``level`` quantile minimises.

    Example:
        >>> pinball_loss([0.5, 0.5], [1.0, 0.0], 0.1)
        0.25
    """
    q, y = _pair(predicted, success_rates, "predicted quantiles")
    if not 0.0 < level < 1.0:
        raise CalibrationError(f"quantile level must lie in (0, 1), got {level}")
    error = y - q
    return float(np.mean(np.maximum(level * error, (level - 1.0) * error)))


def quantile_coverage(
    predicted: Sequence[float] | np.ndarray,
    success_rates: Sequence[float] | np.ndarray,
) -> float:
    """Fraction of records whose success rate is at least the predicted quantile.

    For a calibrated 10% quantile this is about 0.9: the lower bound IAS relies on.

    Example:
        >>> quantile_coverage([0.2, 0.5, 0.9], [0.25, 0.5, 0.5])
        0.6666666666666666
    """
    q, y = _pair(predicted, success_rates, "predicted quantiles")
    return float(np.mean(y >= q - 1e-12))


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count half).

    Computed from average ranks (Mann-Whitney U). NaN when only one class occurs,
    where the area is undefined.

    Example:
        >>> auroc([0.1, 0.4, 0.4, 0.9], [False, False, True, True])
        0.875
    """
    x = float_vector(scores, "scores")
    positive = np.asarray(labels, dtype=bool)
    if positive.shape != x.shape:
        raise CalibrationError(f"got {positive.size} labels for {x.size} scores")
    if not np.all(np.isfinite(x)):
        raise CalibrationError("scores contain NaN or infinite values")
    n_pos = int(positive.sum())
    n_neg = len(x) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based average ranks
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class ReliabilityBin(BaseModel):
    """One bin of a reliability diagram: predictions in ``[lower, upper)`` and what happened."""

    lower: float
    upper: float
    mean_predicted: float
    """Trial-weighted mean prediction in the bin."""
    observed_rate: float
    """Successes over trials of the records in the bin."""
    trials: float
    records: int


def reliability_bins(
    probabilities: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    n_bins: int = ECE_BINS,
) -> list[ReliabilityBin]:
    """The non-empty equal-width bins of predicted probability, with observed success."""
    if n_bins < 1:
        raise CalibrationError(f"n_bins must be >= 1, got {n_bins}")
    p, s, t = _outcomes(probabilities, successes, trials)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    bins = []
    for b in np.unique(index):
        mask = index == b
        total = float(t[mask].sum())
        bins.append(
            ReliabilityBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                mean_predicted=float((t[mask] * p[mask]).sum() / total),
                observed_rate=float(s[mask].sum() / total),
                trials=total,
                records=int(mask.sum()),
            )
        )
    return bins


# -- a report over calibrators -----------------------------------------------------------


class CalibratorMetrics(BaseModel):
    """Every metric of one calibrator (or of the raw PRM) on one set of records."""

    name: str
    kind: str
    """The calibrator's kind, or ``"raw"`` for the uncalibrated PRM."""
    levels: list[float]
    brier: float
    """Brier score of the point estimate (mean, else median) over every rollout outcome."""
    ece: float
    """Expected calibration error of the point estimate, 15 equal-width bins."""
    auroc: float | None
    """AUROC of the point estimate for the trajectory's correctness; ``None`` if undefined."""
    pinball: dict[float, float]
    """Pinball loss per quantile level, on success rates (lower is better)."""
    coverage: dict[float, float]
    """Fraction of records with success rate >= the predicted quantile (target: 1 - level)."""
    mean_lower: float
    """Mean of the lowest quantile: how much a calibrator's bound costs IAS in samples."""
    reliability: list[ReliabilityBin] = Field(default_factory=list)


class CalibrationReport(BaseModel):
    """Metrics of several calibrators on the same held-out records, raw PRM first."""

    n_records: int
    n_questions: int
    total_trials: float
    rows: list[CalibratorMetrics]

    def row(self, name: str) -> CalibratorMetrics:
        """The metrics of the calibrator named ``name``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)


@dataclass(frozen=True)
class FixedPredictions:
    """Quantiles already predicted for each record, by something that is not a calibrator.

    A PRM with its own quantile head (such as a probe on the policy's embeddings)
    is evaluated on the same records this way.
    """

    levels: tuple[float, ...]
    quantiles: Sequence[Sequence[float]]
    kind: str = "predictions"
    means: Sequence[float] | None = None
    """Point estimates; ``None`` uses the quantile at 0.5."""

    def array(self, n_records: int) -> np.ndarray:
        values = np.asarray(self.quantiles, dtype=np.float64)
        if values.shape != (n_records, len(self.levels)) or not np.isfinite(values).all():
            raise CalibrationError(
                f"{self.kind}: expected {n_records} x {len(self.levels)} finite quantiles, "
                f"got shape {values.shape}"
            )
        return values


def evaluate(
    calibrators: Mapping[str, Calibrator | FixedPredictions | None],
    records: Sequence[CalibrationRecord],
    *,
    include_raw: bool = True,
    n_bins: int = ECE_BINS,
) -> CalibrationReport:
    """Compare calibrators on the same records (normally held-out questions).

    Args:
        calibrators: Name -> fitted calibrator; ``None`` stands for the raw PRM
            scores taken as point estimates.
        records: The records to score, e.g. the test side of :func:`split_by_question`.
        include_raw: Add a ``"raw"`` row first when no entry is ``None``.
        n_bins: Bins of ECE and the reliability diagram.

    Returns:
        One row per calibrator, in the given order after ``"raw"``.

    Raises:
        CalibrationError: No records, or a calibrator that cannot predict them.
    """
    if not records:
        raise CalibrationError("no records to evaluate on")
    raw = np.array([record.raw_score for record in records], dtype=np.float64)
    features = np.array([record.features for record in records], dtype=np.float64)
    successes = np.array([record.successes for record in records], dtype=np.float64)
    trials = np.array([record.trials for record in records], dtype=np.float64)
    correct = np.array([record.trajectory_correct for record in records], dtype=bool)
    rates = successes / trials
    entries = dict(calibrators)
    if include_raw and all(value is not None for value in entries.values()):
        entries = {RAW: None, **entries}
    rows = []
    for name, calibrator in entries.items():
        if calibrator is None:
            levels = tuple(DEFAULT_LEVELS)
            quantiles = np.repeat(raw[:, None], len(levels), axis=1)
            kind, point = RAW, raw
        elif isinstance(calibrator, FixedPredictions):
            levels, kind = calibrator.levels, calibrator.kind
            quantiles = calibrator.array(len(records))
            point = (
                quantile_at_level(quantiles, levels, 0.5)
                if calibrator.means is None
                else np.asarray(calibrator.means, dtype=np.float64)
            )
        else:
            levels = calibrator.levels
            quantiles = calibrator.predict_quantiles(raw, features)
            kind = calibrator.kind or type(calibrator).__name__
            point = calibrator.predict_mean(raw, features)
        area = auroc(point, correct)
        rows.append(
            CalibratorMetrics(
                name=name,
                kind=kind,
                levels=list(levels),
                brier=brier_score(point, successes, trials),
                ece=expected_calibration_error(point, successes, trials, n_bins),
                auroc=None if math.isnan(area) else area,
                pinball={
                    level: pinball_loss(quantiles[:, i], rates, level)
                    for i, level in enumerate(levels)
                },
                coverage={
                    level: quantile_coverage(quantiles[:, i], rates)
                    for i, level in enumerate(levels)
                },
                mean_lower=float(quantiles[:, 0].mean()),
                reliability=reliability_bins(point, successes, trials, n_bins),
            )
        )
    return CalibrationReport(
        n_records=len(records),
        n_questions=len({record.question_id for record in records}),
        total_trials=float(trials.sum()),
        rows=rows,
    )


def report_markdown(report: CalibrationReport) -> str:
    """The report as a Markdown table: one row per calibrator, one column per metric.

    Example:
        .. code-block:: python

            print(report_markdown(evaluate({"isotonic": isotonic}, test_records)))
    """
    levels = sorted({level for row in report.rows for level in row.levels})
    header = ["calibrator", "kind", "Brier", "ECE", "AUROC"]
    header += [f"pinball@{level:g}" for level in levels]
    header += [f"coverage@{level:g}" for level in levels]
    header.append("mean lower")
    lines = [
        f"Calibration on {report.n_records} records from {report.n_questions} questions "
        f"({report.total_trials:g} rollouts).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for row in report.rows:
        cells = [row.name, row.kind, f"{row.brier:.4f}", f"{row.ece:.4f}"]
        cells.append("n/a" if row.auroc is None else f"{row.auroc:.3f}")
        cells += [_cell(row.pinball.get(level)) for level in levels]
        cells += [_cell(row.coverage.get(level), digits=3) for level in levels]
        cells.append(f"{row.mean_lower:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reliability_diagram(
    report_or_predictions: CalibrationReport
    | Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Reliability of the point success estimate",
    n_bins: int = ECE_BINS,
) -> Path:
    """Draw observed against predicted success per bin, one line per calibrator, as a PNG.

    Args:
        report_or_predictions: A :class:`CalibrationReport`, or name ->
            ``(probabilities, successes, trials)``.
        path: Where to write the PNG (parent folders are created).
        title: The figure's title.
        n_bins: Bins, when predictions rather than a report are given.

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'langchain-adaptive[bench]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "reliability diagrams need matplotlib: pip install 'langchain-adaptive[bench]'"
        ) from error
    if isinstance(report_or_predictions, CalibrationReport):
        curves = {row.name: row.reliability for row in report_or_predictions.rows}
    else:
        curves = {
            name: reliability_bins(p, s, t, n_bins)
            for name, (p, s, t) in report_or_predictions.items()
        }
    figure = Figure(figsize=(5.5, 5.0), dpi=120)
    FigureCanvasAgg(figure)  # Agg without pyplot: no global backend switch, no display
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, bins in curves.items():
        if not bins:
            continue
        total = sum(b.trials for b in bins)
        x = [b.mean_predicted for b in bins]
        y = [b.observed_rate for b in bins]
        (line,) = axes.plot(x, y, marker="o", markersize=3, linewidth=1.2, label=name)
        sizes = [4 + 200 * b.trials / total for b in bins]  # area ~ share of rollouts
        axes.scatter(x, y, s=sizes, alpha=0.25, color=line.get_color())
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted success probability (mean, else median)")
    axes.set_ylabel("observed success rate")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", bbox_inches="tight")
    return out


def split_by_question(
    records: Sequence[CalibrationRecord], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[CalibrationRecord], list[CalibrationRecord]]:
    """Split records into train and test by question, never splitting a question.

    Prefixes of one question share its answer and difficulty, so a split by
    prefix would leak the test questions into the fit.

    Args:
        records: Calibration records of at least two questions.
        test_fraction: Share of questions (rounded, at least one) put in the test side.
        seed: Seeds the shuffle of question ids; the same seed gives the same split.

    Returns:
        ``(train, test)``, each in the records' original order.

    Raises:
        CalibrationError: Fewer than two questions, or a fraction outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise CalibrationError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    questions = sorted({record.question_id for record in records})
    if len(questions) < 2:
        raise CalibrationError(f"need at least two questions to split, got {len(questions)}")
    n_test = min(len(questions) - 1, max(1, round(test_fraction * len(questions))))
    shuffled = np.random.default_rng(seed).permutation(len(questions))
    test_ids = {questions[i] for i in shuffled[:n_test]}
    train = [record for record in records if record.question_id not in test_ids]
    test = [record for record in records if record.question_id in test_ids]
    return train, test


# -- helpers -----------------------------------------------------------------------------


def _outcomes(
    probabilities: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = float_vector(probabilities, "probabilities")
    s = float_vector(successes, "successes")
    t = float_vector(trials, "trials")
    if not len(p) == len(s) == len(t):
        raise CalibrationError(
            f"got {len(p)} probabilities, {len(s)} successes and {len(t)} trials"
        )
    if len(p) == 0:
        raise CalibrationError("no records to score")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(s)) and np.all(np.isfinite(t))):
        raise CalibrationError("probabilities and outcomes must be finite (no NaN)")
    if np.any((p < 0) | (p > 1)):
        raise CalibrationError("probabilities must lie in [0, 1]")
    if np.any(t < 1) or np.any((s < 0) | (s > t)):
        raise CalibrationError("need trials >= 1 and 0 <= successes <= trials")
    return p, s, t


def _pair(
    predicted: Sequence[float] | np.ndarray,
    success_rates: Sequence[float] | np.ndarray,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    q = float_vector(predicted, name)
    y = float_vector(success_rates, "success rates")
    if len(q) != len(y):
        raise CalibrationError(f"got {len(q)} {name} for {len(y)} success rates")
    if len(q) == 0:
        raise CalibrationError("no records to score")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(y))):
        raise CalibrationError(f"{name} and success rates must be finite (no NaN)")
    return q, y


def _cell(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


__all__ = [
    "ECE_BINS",
    "RAW",
    "CalibrationReport",
    "CalibratorMetrics",
    "ReliabilityBin",
    "auroc",
    "brier_score",
    "evaluate",
    "expected_calibration_error",
    "pinball_loss",
    "quantile_coverage",
    "reliability_bins",
    "reliability_diagram",
    "report_markdown",
    "split_by_question",
]

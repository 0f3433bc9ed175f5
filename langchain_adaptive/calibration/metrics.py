"""How good is a calibrator? Brier, ECE, pinball loss, quantile coverage, AUROC, plots.

Every metric is computed on held-out questions: :func:`split_by_question` keeps
all prefixes of a question on one side, since prefixes of one question share
their answer and would leak it. A record's ``successes`` out of ``trials``
rollouts count as that many binary outcomes for the point-estimate metrics
(Brier, ECE); the quantile metrics (pinball loss, coverage) compare each
record's success rate with the predicted quantile, one record one vote.

A few held-out questions make every score noisy, so :func:`evaluate` also gives
each row's Brier score minus the best baseline's with a paired bootstrap
interval over questions (:func:`brier_difference_interval`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from langchain_adaptive.calibration._base import DEFAULT_LEVELS, Calibrator
from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.calibration._utils import float_vector, quantile_at_level
from langchain_adaptive.errors import CalibrationError

ECE_BINS = 15
"""Equal-width bins of the expected calibration error (the paper's and the issue's choice)."""
RAW = "raw"
"""The report row of the uncalibrated PRM: its raw scores as point estimates."""
BASELINE_KINDS = ("platt", "isotonic", "histogram")
"""Kinds of the classical calibrators; the best of them is the report's default reference."""
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the paired bootstrap over questions in :func:`evaluate`."""


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


def brier_difference_interval(
    probabilities: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    successes: Sequence[float] | np.ndarray,
    trials: Sequence[float] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Brier score of ``probabilities`` minus that of ``reference``, with a bootstrap interval.

    The bootstrap is paired and clustered: each resample draws whole groups
    (questions) with replacement and scores both predictions on the same draw,
    since prefixes of one question are not independent. The interval is the
    percentile interval of the resampled differences; the same ``seed`` draws the
    same resamples, so intervals of several calibrators against one reference
    share them.

    Args:
        probabilities: Point estimates to compare.
        reference: The reference's point estimates on the same records.
        successes: Successful rollouts per record.
        trials: Rollouts per record.
        groups: The question of each record.
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval, e.g. 0.95.
        seed: Seeds the resampling.

    Returns:
        ``(difference, lower, upper)``; negative means ``probabilities`` scores better.

    Raises:
        CalibrationError: Mismatched lengths, bad outcomes, or bad settings.

    Example:
        >>> brier_difference_interval([0.5, 0.5], [0.5, 0.5], [1, 1], [2, 2], ["a", "b"])
        (0.0, 0.0, 0.0)
    """
    p, s, t = _outcomes(probabilities, successes, trials)
    r, _, _ = _outcomes(reference, successes, trials)
    if len(r) != len(p) or len(groups) != len(p):
        raise CalibrationError(
            f"got {len(p)} probabilities, {len(r)} reference values and {len(groups)} groups"
        )
    if n_resamples < 1:
        raise CalibrationError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise CalibrationError(f"confidence must lie in (0, 1), got {confidence}")
    _, group_index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    gap = s * ((1.0 - p) ** 2 - (1.0 - r) ** 2) + (t - s) * (p**2 - r**2)
    group_gap = np.bincount(group_index, weights=gap, minlength=n_groups)
    group_trials = np.bincount(group_index, weights=t, minlength=n_groups)
    counts = np.random.default_rng(seed).multinomial(
        n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples
    )
    resampled = (counts @ group_gap) / (counts @ group_trials)
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(resampled, [tail, 1.0 - tail])
    return float(group_gap.sum() / group_trials.sum()), float(lower), float(upper)


class BrierDifference(BaseModel):
    """A row's Brier score minus the reference row's, with a paired bootstrap interval."""

    reference: str
    difference: float
    """Negative: this row's point estimate scores better than the reference's."""
    lower: float
    upper: float
    """The interval's bounds; one that contains 0 means the gap is within resampling noise."""


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
    brier_difference: BrierDifference | None = None
    """Brier score minus the report's reference's; ``None`` for the reference itself."""
    reliability: list[ReliabilityBin] = Field(default_factory=list)


class CalibrationReport(BaseModel):
    """Metrics of several calibrators on the same held-out records, raw PRM first."""

    n_records: int
    n_questions: int
    total_trials: float
    rows: list[CalibratorMetrics]
    reference: str | None = None
    """The row every ``brier_difference`` is taken against (by default the best baseline)."""
    bootstrap_resamples: int = 0
    """Resamples of questions behind the Brier intervals (0: none computed)."""
    confidence: float = 0.95
    """Coverage of the Brier intervals."""

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
    reference: str | None = None,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> CalibrationReport:
    """Compare calibrators on the same records (normally held-out questions).

    Every row but the reference also gets its Brier score minus the reference's,
    with a paired bootstrap interval over questions
    (:func:`brier_difference_interval`): whether a gap is more than noise.

    Args:
        calibrators: Name -> fitted calibrator; ``None`` stands for the raw PRM
            scores taken as point estimates.
        records: The records to score, e.g. the test side of :func:`split_by_question`.
        include_raw: Add a ``"raw"`` row first when no entry is ``None``.
        n_bins: Bins of ECE and the reliability diagram.
        reference: The row to compare Brier scores against; ``None`` takes the
            best baseline (lowest Brier of the Platt, isotonic and histogram rows),
            and no comparison is made when there is none.
        bootstrap: Resamples of questions; 0 skips the comparison.
        confidence: Coverage of the intervals.
        seed: Seeds the resampling.

    Returns:
        One row per calibrator, in the given order after ``"raw"``.

    Raises:
        CalibrationError: No records, a calibrator that cannot predict them, or
            a ``reference`` that names no row.
    """
    if not records:
        raise CalibrationError("no records to evaluate on")
    raw = np.array([record.raw_score for record in records], dtype=np.float64)
    features = np.array([record.features for record in records], dtype=np.float64)
    successes = np.array([record.successes for record in records], dtype=np.float64)
    trials = np.array([record.trials for record in records], dtype=np.float64)
    correct = np.array([record.trajectory_correct for record in records], dtype=bool)
    rates = successes / trials
    groups = np.array([record.question_id for record in records], dtype=str)
    entries = dict(calibrators)
    if include_raw and all(value is not None for value in entries.values()):
        entries = {RAW: None, **entries}
    if reference is not None and reference not in entries:
        raise CalibrationError(f"reference {reference!r} is not one of {sorted(entries)}")
    rows = []
    points: dict[str, np.ndarray] = {}
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
        points[name] = point
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
    if reference is None:
        baselines = [row for row in rows if row.kind in BASELINE_KINDS]
        reference = min(baselines, key=lambda row: row.brier).name if baselines else None
    if bootstrap < 1:
        reference = None
    if reference is not None:
        for row in rows:
            if row.name == reference:
                continue
            difference, lower, upper = brier_difference_interval(
                points[row.name],
                points[reference],
                successes,
                trials,
                groups,
                n_resamples=bootstrap,
                confidence=confidence,
                seed=seed,
            )
            row.brier_difference = BrierDifference(
                reference=reference, difference=difference, lower=lower, upper=upper
            )
    return CalibrationReport(
        n_records=len(records),
        n_questions=len(set(groups)),
        total_trials=float(trials.sum()),
        rows=rows,
        reference=reference,
        bootstrap_resamples=bootstrap if reference is not None else 0,
        confidence=confidence,
    )


def report_markdown(report: CalibrationReport) -> str:
    """The report as a Markdown table: one row per calibrator, one column per metric.

    Example:
        .. code-block:: python

            print(report_markdown(evaluate({"isotonic": isotonic}, test_records)))
    """
    levels = sorted({level for row in report.rows for level in row.levels})
    compared = report.reference is not None
    header = ["calibrator", "kind", "Brier"]
    if compared:
        header.append(f"Brier - {report.reference} ({report.confidence:.0%} CI)")
    header += ["ECE", "AUROC"]
    header += [f"pinball@{level:g}" for level in levels]
    header += [f"coverage@{level:g}" for level in levels]
    header.append("mean lower")
    title = (
        f"Calibration on {report.n_records} records from {report.n_questions} questions "
        f"({report.total_trials:g} rollouts)."
    )
    if compared:
        title += (
            f" Brier - {report.reference}: paired bootstrap over the questions "
            f"({report.bootstrap_resamples} resamples); an interval containing 0 is noise."
        )
    lines = [
        title,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for row in report.rows:
        cells = [row.name, row.kind, f"{row.brier:.4f}"]
        if compared:
            cells.append(_difference_cell(row.brier_difference))
        cells.append(f"{row.ece:.4f}")
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


def _difference_cell(difference: BrierDifference | None) -> str:
    if difference is None:
        return "reference"
    d = difference
    return f"{d.difference:+.4f} ({d.lower:+.4f}, {d.upper:+.4f})"


__all__ = [
    "BASELINE_KINDS",
    "BOOTSTRAP_RESAMPLES",
    "ECE_BINS",
    "RAW",
    "BrierDifference",
    "CalibrationReport",
    "CalibratorMetrics",
    "ReliabilityBin",
    "auroc",
    "brier_difference_interval",
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

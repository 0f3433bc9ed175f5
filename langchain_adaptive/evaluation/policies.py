"""The policies the benchmark compares, built by name so one run covers them all.

Fixed best-of-N at every power of two the pools allow (PRM-selected and
weighted vote for every recorded scorer, majority vote always),
Adaptive-Consistency at several thresholds and Early-Stopping
Self-Consistency at several windows (each a family, so the report finds the
setting that matches a baseline), IAS with each estimator at several target
confidences, sequential IAS beside it when step scores are recorded, and the
oracle: IAS that knows each question's true success rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.budget import coverage_probability, ias_sample_count
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import ORACLE, QuestionPool
from langchain_adaptive.evaluation.replay import Policy
from langchain_adaptive.strategies import (
    AdaptiveBestOfN,
    AdaptiveConsistency,
    BestOfN,
    Decision,
    EarlyStoppingConsistency,
    EstimateQuestion,
    Plan,
    RunState,
    SequentialAdaptiveBestOfN,
    Strategy,
)
from langchain_adaptive.strategies._allocation import (
    FixedAllocation,
    allocate_budget,
    estimate_value,
)

FIXED_SIZES = (1, 2, 4, 8, 16, 32, 64)
CONFIDENCES = (0.5, 0.7, 0.9, 0.95, 0.99)
ESC_MAX_SAMPLES = 40
"""Early-Stopping Self-Consistency's cap in Li et al. 2024."""
AC_THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Adaptive-Consistency's stopping thresholds swept (the paper's default is 0.95)."""
ESC_WINDOWS = (2, 3, 4, 5, 6, 8)
"""Early-Stopping Self-Consistency's windows swept (the paper's default is 5)."""


class OracleBestOfN(Strategy):
    """IAS with the true success rate: the allocation no estimator can beat.

    Replay answers its question estimate with the pool's true rate ``p``. A
    question no sample solves (``p = 0``) gets one sample, since it must be
    answered and more cannot help; any other gets the IAS count for ``p``,
    capped.
    """

    name: ClassVar[str] = "oracle_best_of_n"
    requires_prm: ClassVar[bool] = True

    def plan(self, state: RunState) -> Plan:
        estimate = yield EstimateQuestion()
        p = estimate.median
        needed = 1 if p <= 0.0 else ias_sample_count(p, state.target_confidence)
        decided = min(needed, state.max_samples)
        yield from self._draw_and_score(state, decided)
        return Decision(
            stop_reason="adaptive_budget" if decided == needed else "max_samples",
            decided_samples=decided,
            confidence=coverage_probability(p, len(state.candidates)),
            low_confidence=needed > state.max_samples,
        )


def standard_policies(
    pool_size: int,
    *,
    estimators: Sequence[str] = (),
    scorer: str | Sequence[str] | None = None,
    confidences: Sequence[float] = CONFIDENCES,
    sizes: Sequence[int] = FIXED_SIZES,
    selection: SelectionRule = "majority_vote",
    quantile: float = 0.1,
    oracle: bool = True,
    round_size: int = 2,
    floor_samples: int | None = None,
    ac_thresholds: Sequence[float] = AC_THRESHOLDS,
    esc_windows: Sequence[int] = ESC_WINDOWS,
) -> list[Policy]:
    """Every policy of the comparison that ``pool_size`` recorded samples per question allow.

    Args:
        pool_size: Samples recorded per question: the largest N and the IAS cap.
        estimators: Recorded estimators to run IAS with (PRM or calibrated names);
            each needs a question-alone estimate on every question.
        scorer: Recorded estimator (or several) whose step scores select among
            samples: each gets its own ``prm`` and ``weighted_vote`` best-of-N
            families; the first also selects for IAS and sequential IAS
            (``None``: majority vote only).
        selection: How IAS and the oracle pick the answer (``majority_vote``
            compares like with like against the fixed majority baseline).
        quantile: The quantile of the estimate IAS budgets on (the calibrated
            lower bound).
        round_size: Samples per round of sequential IAS, which runs beside
            one-shot IAS for every estimator when a ``scorer`` is recorded. It
            stops on the estimator's own step estimates of the samples drawn
            where the pool records them (so two calibrations of one score stop
            differently), else on the scorer's, as a
            :class:`~langchain_adaptive.prm.SplitPRM` does live.
        floor_samples: Also run IAS that gives up where the target is out of
            reach within the cap, drawing only this many samples there
            (``unreachable="floor"``; family ``ias-floorK[EST]``) instead of
            the paper's spending the cap.
        ac_thresholds: Adaptive-Consistency's thresholds, one family
            ``adaptive-consistency`` (policies ``adaptive-consistency@T``).
        esc_windows: ESC's windows (those within the cap), one family
            ``early-stopping sc`` (policies ``esc@wW``).
    """
    if pool_size < 1:
        raise ConfigurationError(f"pool_size must be >= 1, got {pool_size}")
    scorers = [scorer] if isinstance(scorer, str) else list(scorer or ())
    if len(set(scorers)) < len(scorers):
        raise ConfigurationError(f"scorers must be distinct, got {scorers}")
    scorer = scorers[0] if scorers else None
    if selection != "majority_vote" and scorer is None:
        raise ConfigurationError(f"selection {selection!r} needs a recorded scorer")
    policies: list[Policy] = []
    scored_rules: tuple[tuple[SelectionRule, str], ...] = (
        ("prm", "prm"),
        ("weighted_vote", "weighted"),
    )
    # the whole pool is always a baseline (best-of-24 on a 24-sample pool)
    for n in sorted({*(size for size in sizes if size <= pool_size), pool_size}):
        policies.append(
            Policy(
                name=f"bon{n}-majority",
                family="best-of-n (majority)",
                strategy=BestOfN(n=n, selection="majority_vote"),
                max_samples=n,
            )
        )
        for name in scorers:
            for rule, label in scored_rules:
                policies.append(
                    Policy(
                        name=f"bon{n}-{label}[{name}]",
                        family=f"best-of-n ({label}, {name})",
                        strategy=BestOfN(n=n, selection=rule),
                        scorer=name,
                        max_samples=n,
                    )
                )
    policies += vote_stop_policies(pool_size, thresholds=ac_thresholds, windows=esc_windows)
    ias_scorer = scorer if selection != "majority_vote" else None
    for estimator in [*estimators, *([ORACLE] if oracle else [])]:
        if estimator == ORACLE:
            policies += _confidence_family(
                "ias", OracleBestOfN(selection=selection), estimator, ias_scorer,
                confidences, pool_size,
            )  # fmt: skip
            continue
        policies += _confidence_family(
            "ias", AdaptiveBestOfN(selection=selection, quantile=quantile), estimator,
            ias_scorer, confidences, pool_size,
        )  # fmt: skip
        if floor_samples is not None:
            floored = AdaptiveBestOfN(
                selection=selection,
                quantile=quantile,
                unreachable="floor",
                floor_samples=floor_samples,
            )
            policies += _confidence_family(
                f"ias-floor{floor_samples}", floored, estimator, ias_scorer, confidences,
                pool_size,
            )  # fmt: skip
        if scorer is not None:
            sequential = SequentialAdaptiveBestOfN(
                selection=selection, quantile=quantile, round_size=round_size
            )
            policies += _confidence_family(
                "sequential-ias", sequential, estimator, scorer, confidences, pool_size
            )
    return policies


def vote_stop_policies(
    pool_size: int,
    *,
    thresholds: Sequence[float] = AC_THRESHOLDS,
    windows: Sequence[int] = ESC_WINDOWS,
) -> list[Policy]:
    """Adaptive-Consistency at each threshold and ESC at each window, a family each.

    Both stop on the votes drawn so far and need no scorer; sweeping the knob
    makes each a curve, so the report finds the setting that matches a
    baseline (match ratio, parity) rather than one fixed point.
    """
    cap = min(ESC_MAX_SAMPLES, pool_size)
    return [
        *(
            Policy(
                name=f"adaptive-consistency@{threshold:g}",
                family="adaptive-consistency",
                strategy=AdaptiveConsistency(threshold=threshold),
                max_samples=pool_size,
            )
            for threshold in thresholds
        ),
        *(
            Policy(
                name=f"esc@w{window}",
                family="early-stopping sc",
                strategy=EarlyStoppingConsistency(window=window),
                max_samples=cap,
            )
            for window in windows
            if window <= cap
        ),
    ]


def _confidence_family(
    prefix: str,
    strategy: Strategy,
    estimator: str,
    scorer: str | None,
    confidences: Sequence[float],
    pool_size: int,
) -> list[Policy]:
    """One strategy on one estimator at every target confidence: ``PREFIX[EST]@C``."""
    return [
        Policy(
            name=f"{prefix}[{estimator}]@{confidence:g}",
            family=f"{prefix}[{estimator}]",
            strategy=strategy,
            estimator=estimator,
            scorer=scorer,
            target_confidence=confidence,
            max_samples=pool_size,
        )
        for confidence in confidences
    ]


def ias_total_samples(
    pools: Sequence[QuestionPool],
    estimator: str,
    target_confidence: float,
    *,
    max_samples: int,
    quantile: float = 0.1,
) -> int:
    """The samples one-shot IAS spends on ``pools`` in all (its N depends on the estimate only)."""
    return sum(
        min(
            ias_sample_count(pool.question_estimates[estimator].at(quantile), target_confidence),
            max_samples,
        )
        for pool in pools
    )


def batch_allocation_policy(
    pools: Sequence[QuestionPool],
    estimator: str,
    total_samples: int,
    *,
    max_samples: int,
    quantile: float | None = None,
    selection: SelectionRule = "majority_vote",
    scorer: str | None = None,
    name: str | None = None,
) -> Policy:
    """The batch allocation of ``total_samples`` over ``pools`` as one replayable policy.

    The allocation (:func:`~langchain_adaptive.strategies._allocation.allocate_budget` on
    the recorded question estimates) is made once, over the questions of the
    run, exactly as :meth:`AdaptiveReasoningRunnable.batch_with_budget` makes it
    live; the policy then draws each question's share, and picks the answer
    by ``selection`` (on ``scorer``'s step scores, by default the estimator's).

    Raises:
        ConfigurationError: Two pools share a question text (the allocation is
            looked up by text), a pool lacks ``estimator``, or the total is
            below one sample a question.
    """
    texts = [pool.question for pool in pools]
    if len(set(texts)) < len(texts):
        raise ConfigurationError("batch allocation needs distinct question texts in the pools")
    missing = [pool.id for pool in pools if estimator not in pool.question_estimates]
    if missing:
        raise ConfigurationError(
            f"batch allocation needs estimator {estimator!r}; {len(missing)} question(s) "
            f"lack it (e.g. {missing[0]!r})"
        )
    estimates = [pool.question_estimates[estimator] for pool in pools]
    shares = allocate_budget(
        [estimate_value(e, quantile) for e in estimates], total_samples, max_samples
    )
    return Policy(
        name=name or f"batch[{estimator}]@{total_samples}",
        family=f"batch[{estimator}]",
        strategy=FixedAllocation(
            samples=dict(zip(texts, shares, strict=True)),
            estimates=dict(zip(texts, estimates, strict=True)),
            quantile=quantile,
            selection=selection,
        ),
        estimator=estimator,
        scorer=scorer,
        max_samples=max_samples,
    )


def batch_policies(
    pools: Sequence[QuestionPool],
    estimators: Sequence[str],
    *,
    max_samples: int,
    confidences: Sequence[float] = CONFIDENCES,
    quantile: float = 0.1,
    selection: SelectionRule = "majority_vote",
    scorer: str | None = None,
) -> list[Policy]:
    """Batch allocation at the total one-shot IAS spends at each confidence, per estimator.

    Named ``batch[EST]@C`` beside ``ias[EST]@C``: the two spend the same
    samples in all, so the report compares their accuracy at equal compute.
    """
    policies = []
    for estimator in (e for e in estimators if e != ORACLE):
        for confidence in confidences:
            total = ias_total_samples(
                pools, estimator, confidence, max_samples=max_samples, quantile=quantile
            )
            policies.append(
                batch_allocation_policy(
                    pools,
                    estimator,
                    total,
                    max_samples=max_samples,
                    selection=selection,
                    scorer=scorer,
                    name=f"batch[{estimator}]@{confidence:g}",
                )
            )
    return policies


def batch_budget_policies(
    pools: Sequence[QuestionPool],
    estimators: Sequence[str],
    budgets: Sequence[float],
    *,
    max_samples: int,
    quantile: float = 0.1,
    selection: SelectionRule = "majority_vote",
    scorer: str | None = None,
) -> list[Policy]:
    """Batch allocation at fixed mean budgets (samples a question), per estimator.

    Named ``batch[EST]@Bs``: a compute curve for each estimator at any budget,
    where per-question IAS only has the points its confidences land on, so two
    estimators can be compared at equal compute, e.g. a calibrated one against
    a raw one.
    """
    return [
        batch_allocation_policy(
            pools,
            estimator,
            max(len(pools), round(budget * len(pools))),
            max_samples=max_samples,
            quantile=quantile,
            selection=selection,
            scorer=scorer,
            name=f"batch[{estimator}]@{budget:g}s",
        )
        for estimator in estimators
        if estimator != ORACLE
        for budget in budgets
    ]


__all__ = [
    "AC_THRESHOLDS",
    "CONFIDENCES",
    "ESC_MAX_SAMPLES",
    "ESC_WINDOWS",
    "FIXED_SIZES",
    "OracleBestOfN",
    "batch_allocation_policy",
    "batch_budget_policies",
    "batch_policies",
    "ias_total_samples",
    "standard_policies",
    "vote_stop_policies",
]

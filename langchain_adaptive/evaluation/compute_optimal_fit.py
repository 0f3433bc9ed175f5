"""Fit a compute-optimal policy file from a replay: the harness half of Snell et al. 2024.

A replay of every policy on validation pools (:mod:`.replay`) gives each
policy's correctness and samples per question. :func:`choose_policy` bins the
questions by the calibrated question estimate (quantile bins) and, per bin and
budget level, keeps the most accurate policy within the budget; the result is
a :class:`~langchain_adaptive.strategies.compute_optimal.ComputeOptimalPolicy`
that ``bench choose-policy`` saves and
:class:`~langchain_adaptive.strategies.compute_optimal.ComputeOptimalStrategy`
runs. The fitting lives here, above the runtime, so the strategy never imports
the harness.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import QuestionPool
from langchain_adaptive.evaluation.replay import Outcomes
from langchain_adaptive.selection import SelectionRule
from langchain_adaptive.strategies import STRATEGIES
from langchain_adaptive.strategies.allocation import FixedAllocation
from langchain_adaptive.strategies.compute_optimal import (
    BinChoice,
    BudgetLevel,
    ComputeOptimalPolicy,
    ComputeOptimalStrategy,
)

BINS = 5
"""Difficulty bins by default: quintiles of the validation questions' estimates."""

_NOT_CHOSEN = (FixedAllocation, ComputeOptimalStrategy)
"""Registered, but not a per-question choice: a batch allocation, or a policy file itself."""


def choose_policy(
    run: Outcomes,
    pools: Sequence[QuestionPool],
    *,
    estimator: str,
    budgets: Sequence[float],
    quantile: float = 0.5,
    selection: SelectionRule = "majority_vote",
    bins: int = BINS,
    source: str | None = None,
) -> ComputeOptimalPolicy:
    """Choose, per difficulty bin and budget, the best replayed policy.

    Only policies a runnable can run are candidates: a registered strategy
    (not the oracle, not a batch allocation) with the file's ``selection``.
    In each bin, among the candidates whose mean samples per question (in the
    recorded order, replicate 0) fit the budget, the most accurate wins; ties
    go to the cheaper, then to the earlier policy. When none fits, the cheapest
    candidate is chosen. Tied estimates merge bins (there may be fewer than
    ``bins``, never an empty one).

    Args:
        run: The replay of the policies on ``pools`` (same questions, same order).
        pools: The validation questions, with ``estimator``'s question estimates.
        estimator: The estimator whose estimates make the bins.
        budgets: Mean samples per question, one level each.
        quantile: The level of the estimate that is binned.
        selection: The selection rule every chosen strategy uses.
        bins: How many quantile bins.

    Raises:
        ConfigurationError: No candidate policy, no budgets, mismatched pools
            and run, or a pool without ``estimator``.
    """
    if run.questions != len(pools):
        raise ConfigurationError(
            f"the run has {run.questions} questions but {len(pools)} pools were given"
        )
    if not budgets or any(b <= 0 for b in budgets):
        raise ConfigurationError(f"budgets must be positive mean samples, got {list(budgets)}")
    if bins < 1:
        raise ConfigurationError(f"bins must be >= 1, got {bins}")
    missing = [pool.id for pool in pools if estimator not in pool.question_estimates]
    if missing:
        raise ConfigurationError(
            f"{len(missing)} question(s) have no estimate from {estimator!r} (e.g. {missing[0]!r})"
        )
    candidates = [
        index
        for index, policy in enumerate(run.policies)
        if policy.strategy.name in {cls.name for cls, _ in STRATEGIES.values()}
        and not isinstance(policy.strategy, _NOT_CHOSEN)
        and policy.strategy.selection == selection
        and policy.estimator in (None, estimator)
    ]
    if not candidates:
        raise ConfigurationError(
            f"no replayed policy can be chosen: none runs a registered strategy with "
            f"selection {selection!r} and estimator {estimator!r} (or none)"
        )
    estimates = np.array([pool.question_estimates[estimator].at(quantile) for pool in pools])
    inner = [(i + 1) / bins for i in range(bins - 1)]
    # Edges are estimates themselves ("lower" quantiles), each opening its own bin, so
    # no bin is empty; tied estimates give tied edges, which merge (fewer bins).
    lowest = float(estimates.min())
    quantiles = np.quantile(estimates, inner, method="lower") if inner else []
    edges = sorted({float(e) for e in quantiles if e > lowest})
    members = np.array([bisect.bisect_right(edges, float(p)) for p in estimates])
    correct = run.correct[0].astype(np.float64)
    samples = run.samples[0].astype(np.float64)
    levels = []
    for budget in sorted(set(float(b) for b in budgets)):
        choices = []
        for b in range(len(edges) + 1):
            questions = np.nonzero(members == b)[0]
            accuracy = correct[:, questions].mean(axis=1)
            spent = samples[:, questions].mean(axis=1)
            fitting = [i for i in candidates if spent[i] <= budget + 1e-12]
            if fitting:
                best = min(fitting, key=lambda i: (-accuracy[i], spent[i], i))
            else:
                best = min(candidates, key=lambda i: (spent[i], -accuracy[i], i))
            choices.append(_choice(run, best, float(accuracy[best]), float(spent[best])))
        levels.append(BudgetLevel(budget=budget, choices=choices))
    return ComputeOptimalPolicy(
        estimator=estimator,
        quantile=quantile,
        selection=selection,
        bin_edges=edges,
        levels=levels,
        source=source,
    )


def _choice(run: Outcomes, index: int, accuracy: float, spent: float) -> BinChoice:
    policy = run.policies[index]
    strategy = policy.strategy
    name = next(key for key, (cls, _) in STRATEGIES.items() if cls is type(strategy))
    return BinChoice(
        strategy=name,
        settings=strategy.model_dump(mode="json"),
        target_confidence=policy.target_confidence,
        max_samples=policy.max_samples,
        policy=policy.name,
        accuracy=accuracy,
        mean_samples=spent,
    )


__all__ = ["BINS", "choose_policy"]

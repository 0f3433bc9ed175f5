"""Fit a compute-optimal policy file from a replay: the harness half of Snell et al. 2024.

A replay of every policy on validation pools (:mod:`.replay`) gives each
policy's correctness and samples per question. :func:`choose_policy` bins the
questions by the calibrated question estimate (quantile bins) and, per bin and
budget level, keeps the most accurate policy within the budget; the result is
a :class:`~langchain_adaptive.strategies._compute_optimal.ComputeOptimalPolicy`
that ``bench choose-policy`` saves and
:class:`~langchain_adaptive.strategies._compute_optimal.ComputeOptimalStrategy`
runs. The fitting lives here, above the runtime, so the strategy never imports
the harness.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import QuestionPool
from langchain_adaptive.evaluation.replay import Outcomes
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import STRATEGIES, build_strategy
from langchain_adaptive.strategies._allocation import FixedAllocation
from langchain_adaptive.strategies._base import Strategy
from langchain_adaptive.strategies._compute_optimal import (
    BinChoice,
    BudgetLevel,
    BudgetUnit,
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
    _require_estimates(pools, estimator)
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
    edges = _bin_edges(estimates, bins)
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


def _bin_edges(estimates: np.ndarray, bins: int) -> list[float]:
    """Inner edges of ``bins`` quantile bins of ``estimates``.

    Edges are estimates themselves ("lower" quantiles), each opening its own bin, so
    no bin is empty; tied estimates give tied edges, which merge (fewer bins).
    """
    inner = [(i + 1) / bins for i in range(bins - 1)]
    lowest = float(estimates.min())
    quantiles = np.quantile(estimates, inner, method="lower") if inner else []
    return sorted({float(e) for e in quantiles if e > lowest})


def _require_estimates(pools: Sequence[QuestionPool], estimator: str) -> None:
    missing = [pool.id for pool in pools if estimator not in pool.question_estimates]
    if missing:
        raise ConfigurationError(
            f"{len(missing)} question(s) have no estimate from {estimator!r} (e.g. {missing[0]!r})"
        )


def _registry_name(strategy: Strategy) -> str | None:
    """The registry name a policy file can rebuild ``strategy`` by; ``None``: not choosable."""
    if isinstance(strategy, _NOT_CHOSEN):
        return None
    return next((key for key, (cls, _) in STRATEGIES.items() if cls is type(strategy)), None)


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


class PolicyOutcome(BaseModel):
    """One policy's outcome on one question: everything a fit over any family reads.

    A replay gives these for the parallel policies (:func:`outcomes_from_replay`);
    a live run writes one a line for the policies that need the model (revisions,
    lookahead, particles), read back with :func:`read_outcomes`. Other fields on
    the line (the trace, the answer) are ignored here.
    """

    model_config = ConfigDict(extra="ignore")

    question_id: str = Field(min_length=1)
    policy: str = Field(min_length=1)
    """The policy's unique name in the run, e.g. ``"beam N=4 K=2 la=1"``."""
    strategy: str
    """Registry name of its strategy (see :mod:`langchain_adaptive.strategies`)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """The strategy's fields, as :func:`~langchain_adaptive.strategies.build_strategy` takes
    (``model_dump(mode="json", exclude_defaults=True)``: a revision prompt, say, has no JSON
    form that builds it again, so only a non-default one is written)."""
    target_confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    max_samples: int = Field(ge=1)
    max_tokens_per_sample: int | None = Field(default=None, ge=1)
    """The token cap per generation it ran with (a sample, a step or a revision)."""
    correct: bool
    generated_tokens: int = Field(ge=0)
    samples: int = Field(ge=0)
    question_estimate: SuccessEstimate
    """The binning estimator's estimate of the question (the same for every policy)."""


def outcomes_from_replay(
    run: Outcomes, pools: Sequence[QuestionPool], *, estimator: str
) -> list[PolicyOutcome]:
    """Replicate 0 of a replay as outcomes: every runnable policy on every question.

    Policies a runnable cannot run (the oracle, a batch allocation) are left out.
    """
    if run.questions != len(pools):
        raise ConfigurationError(
            f"the run has {run.questions} questions but {len(pools)} pools were given"
        )
    _require_estimates(pools, estimator)
    out = []
    for p, policy in enumerate(run.policies):
        name = _registry_name(policy.strategy)
        if name is None or policy.estimator not in (None, estimator):
            continue
        settings = policy.strategy.model_dump(mode="json", exclude_defaults=True)
        for q, pool in enumerate(pools):
            out.append(
                PolicyOutcome(
                    question_id=pool.id,
                    policy=policy.name,
                    strategy=name,
                    settings=settings,
                    target_confidence=policy.target_confidence,
                    max_samples=policy.max_samples,
                    correct=bool(run.correct[0, p, q]),
                    generated_tokens=int(run.tokens[0, p, q]),
                    samples=int(run.samples[0, p, q]),
                    question_estimate=pool.question_estimates[estimator],
                )
            )
    return out


def read_outcomes(path: str | os.PathLike[str]) -> list[PolicyOutcome]:
    """Per-question records of a live run (JSON lines), as outcomes.

    Raises:
        ConfigurationError: The file is missing or a line is not an outcome.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read outcome records {path}: {error}") from error
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(PolicyOutcome.model_validate_json(line))
        except ValidationError as error:
            raise ConfigurationError(
                f"{path}:{number} is not an outcome record: {error}"
            ) from error
    return out


def fit_policy(
    outcomes: Sequence[PolicyOutcome],
    *,
    estimator: str,
    budgets: Sequence[float],
    budget_unit: BudgetUnit = "tokens",
    quantile: float = 0.5,
    bins: int = BINS,
    questions: Collection[str] | None = None,
    source: str | None = None,
) -> ComputeOptimalPolicy:
    """Choose, per difficulty bin and budget, the best policy among any families' outcomes.

    The same rule as :func:`choose_policy`, on outcomes instead of a replay: in
    each bin, among the policies whose mean cost per question (generated tokens
    or samples, by ``budget_unit``) fits the budget, the most accurate wins; ties
    go to the cheaper, then to the policy seen first. When none fits, the
    cheapest is chosen. Every policy must have an outcome on every question fitted.

    Args:
        outcomes: Per question and policy, from a replay or a live run (or both).
        estimator: The name of the estimator behind ``question_estimate``.
        budgets: Mean generated tokens (or samples) per question, one level each.
        budget_unit: What a budget counts.
        quantile: The level of the question estimate that is binned.
        bins: How many quantile bins.
        questions: Fit on these question ids only (``None``: every question).

    Raises:
        ConfigurationError: No outcome, no budget, or a policy missing a question.
    """
    table = _OutcomeTable(outcomes, questions)
    if not budgets or any(b <= 0 for b in budgets):
        raise ConfigurationError(f"budgets must be positive, got {list(budgets)}")
    if bins < 1:
        raise ConfigurationError(f"bins must be >= 1, got {bins}")
    estimates = np.array([table.estimates[q].at(quantile) for q in table.questions])
    edges = _bin_edges(estimates, bins)
    members = np.array([bisect.bisect_right(edges, float(p)) for p in estimates])
    cost = table.tokens if budget_unit == "tokens" else table.samples
    levels = []
    for budget in sorted({float(b) for b in budgets}):
        choices = []
        for b in range(len(edges) + 1):
            columns = np.nonzero(members == b)[0]
            accuracy = table.correct[:, columns].mean(axis=1)
            spent = cost[:, columns].mean(axis=1)
            everyone = range(len(table.policies))
            fitting = [i for i in everyone if spent[i] <= budget + 1e-9]
            if fitting:
                best = min(fitting, key=lambda i: (-accuracy[i], spent[i], i))
            else:
                best = min(everyone, key=lambda i: (spent[i], -accuracy[i], i))
            first = table.policies[best]
            build_strategy(first.strategy, **first.settings)  # fails here, not at load
            choices.append(
                BinChoice(
                    strategy=first.strategy,
                    settings=first.settings,
                    target_confidence=first.target_confidence,
                    max_samples=first.max_samples,
                    max_tokens_per_sample=first.max_tokens_per_sample,
                    policy=first.policy,
                    accuracy=float(accuracy[best]),
                    mean_samples=float(table.samples[best, columns].mean()),
                    mean_tokens=float(table.tokens[best, columns].mean()),
                )
            )
        levels.append(BudgetLevel(budget=budget, choices=choices))
    rules = {c.settings.get("selection") for level in levels for c in level.choices}
    return ComputeOptimalPolicy(
        version=2,
        estimator=estimator,
        quantile=quantile,
        selection=rules.pop() if len(rules) == 1 and None not in rules else None,
        budget_unit=budget_unit,
        bin_edges=edges,
        levels=levels,
        source=source,
    )


class HeldOutOutcome(BaseModel):
    """What the policy fitted on the other fold chose for one question, and how it did."""

    question_id: str
    fold: int
    """The fold the question was held out in (the policy was fitted on the other)."""
    policy: str
    correct: bool
    generated_tokens: int
    samples: int


class CrossValidated(BaseModel):
    """2-fold cross-validation of the compute-optimal choice at one budget level."""

    budget: float
    budget_unit: BudgetUnit
    accuracy: float
    """Held-out accuracy over both folds' questions."""
    mean_tokens: float
    mean_samples: float
    questions: list[HeldOutOutcome]
    """Every question once, in the order the outcomes first listed them."""
    fits: list[ComputeOptimalPolicy]
    """The two fitted policies: ``fits[k]`` was fitted without fold ``k``'s questions."""


def split_folds(question_ids: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Two halves of the questions by a seeded shuffle (the first gets the odd one out)."""
    unique = list(dict.fromkeys(question_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    half = (len(unique) + 1) // 2
    return [unique[i] for i in order[:half]], [unique[i] for i in order[half:]]


def cross_validate(
    outcomes: Sequence[PolicyOutcome],
    *,
    estimator: str,
    budgets: Sequence[float],
    budget_unit: BudgetUnit = "tokens",
    quantile: float = 0.5,
    bins: int = BINS,
    seed: int = 0,
) -> list[CrossValidated]:
    """Held-out accuracy and cost of the compute-optimal choice, as Snell et al. measure it.

    The questions split in two (:func:`split_folds`); a policy is fitted on each
    half (:func:`fit_policy`) and run, by lookup, on the other half's outcomes;
    the two held-out halves together give every question one outcome per budget.
    No question's outcome ever informs the choice made for it.

    Raises:
        ConfigurationError: Fewer than two questions, or what :func:`fit_policy` raises.
    """
    table = _OutcomeTable(outcomes, None)
    if len(table.questions) < 2:
        raise ConfigurationError("cross-validation needs at least two questions")
    folds = split_folds(table.questions, seed)
    fold_of = {q: k for k, fold in enumerate(folds) for q in fold}
    fits = [
        fit_policy(
            outcomes,
            estimator=estimator,
            budgets=budgets,
            budget_unit=budget_unit,
            quantile=quantile,
            bins=bins,
            questions=folds[1 - k],
        )
        for k in range(2)
    ]
    names = {policy.policy: i for i, policy in enumerate(table.policies)}
    out = []
    for budget in sorted({float(b) for b in budgets}):
        held_out = []
        for column, q in enumerate(table.questions):
            k = fold_of[q]
            estimate = table.estimates[q].at(quantile)
            row = names[fits[k].choice(estimate, budget).policy]
            held_out.append(
                HeldOutOutcome(
                    question_id=q,
                    fold=k,
                    policy=table.policies[row].policy,
                    correct=bool(table.correct[row, column]),
                    generated_tokens=int(table.tokens[row, column]),
                    samples=int(table.samples[row, column]),
                )
            )
        out.append(
            CrossValidated(
                budget=budget,
                budget_unit=budget_unit,
                accuracy=float(np.mean([h.correct for h in held_out])),
                mean_tokens=float(np.mean([h.generated_tokens for h in held_out])),
                mean_samples=float(np.mean([h.samples for h in held_out])),
                questions=held_out,
                fits=fits,
            )
        )
    return out


class _OutcomeTable:
    """Outcomes as policy x question arrays, one row per policy in first-seen order."""

    def __init__(
        self, outcomes: Sequence[PolicyOutcome], questions: Collection[str] | None
    ) -> None:
        wanted = None if questions is None else set(questions)
        kept = [o for o in outcomes if wanted is None or o.question_id in wanted]
        if not kept:
            raise ConfigurationError("no outcome to fit on (no policy, or no question kept)")
        self.questions = list(dict.fromkeys(o.question_id for o in kept))
        self.policies: list[PolicyOutcome] = []
        cells: dict[tuple[str, str], PolicyOutcome] = {}
        self.estimates: dict[str, SuccessEstimate] = {}
        seen: dict[str, int] = {}
        for o in kept:
            if o.policy not in seen:
                seen[o.policy] = len(self.policies)
                self.policies.append(o)
            if (o.policy, o.question_id) in cells:
                raise ConfigurationError(f"two outcomes of {o.policy!r} on {o.question_id!r}")
            cells[o.policy, o.question_id] = o
            self.estimates.setdefault(o.question_id, o.question_estimate)
        shape = (len(self.policies), len(self.questions))
        self.correct = np.zeros(shape)
        self.tokens = np.zeros(shape)
        self.samples = np.zeros(shape)
        for i, first in enumerate(self.policies):
            for j, q in enumerate(self.questions):
                cell = cells.get((first.policy, q))
                if cell is None:
                    raise ConfigurationError(
                        f"policy {first.policy!r} has no outcome on question {q!r}: every "
                        "policy must answer every question it is fitted on"
                    )
                self.correct[i, j] = cell.correct
                self.tokens[i, j] = cell.generated_tokens
                self.samples[i, j] = cell.samples


__all__ = [
    "BINS",
    "CrossValidated",
    "HeldOutOutcome",
    "PolicyOutcome",
    "choose_policy",
    "cross_validate",
    "fit_policy",
    "outcomes_from_replay",
    "read_outcomes",
    "split_folds",
]

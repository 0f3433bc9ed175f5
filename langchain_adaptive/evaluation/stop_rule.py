"""Fit the answer-level stop rule on recorded pools, and the policies that replay it.

Fitting walks each calibration question's samples in several random orders,
exactly as replay draws them: after every sample it takes the features of what
has been drawn (:func:`~langchain_adaptive.calibration._answer_stop.answer_features`,
the same function the live strategy calls) and two labels, whether the answer
returned now is correct and whether it is wrong now but right at the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import model_validator

from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.calibration._answer_stop import AnswerStopModel, answer_features
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import QuestionPool
from langchain_adaptive.evaluation.replay import Policy, PreparedPool
from langchain_adaptive.results import Candidate, TokenUsage
from langchain_adaptive.strategies import (
    AnswerConfidenceStop,
    BestOfN,
    FirstSampleIAS,
    Plan,
    RunState,
    SequentialAdaptiveBestOfN,
    Strategy,
)

SCORER_CONFIDENCES = (0.5, 0.7, 0.9, 0.95, 0.99, 0.999)
"""Targets of the rules that stop on sample scores (reward models reach high ``C`` fast)."""
STOP_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
FUTILITIES = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
"""Futility levels of the giving-up curve: stop once P(more samples fix the answer) < F."""
FUTILE_THRESHOLD = 0.9
"""The answer threshold the giving-up curve keeps fixed."""

_NO_USAGE = TokenUsage()


def _candidates(prepared: PreparedPool, scorer: str, order: Sequence[int]) -> list[Candidate]:
    scores = prepared.scores(scorer, "last")
    samples = prepared.pool.samples
    return [
        Candidate.model_construct(
            index=i,
            text=samples[position].text,
            steps=samples[position].steps,
            answer=samples[position].answer,
            step_estimates=samples[position].step_estimates[scorer],
            score=scores[position],
            usage=_NO_USAGE,
            finish_reason=None,
            correct=prepared.correct[position],
        )
        for i, position in enumerate(order)
    ]


def stop_rule_examples(
    pools: Sequence[PreparedPool],
    scorer: str,
    *,
    selection: SelectionRule = "weighted_vote",
    orders: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features and the two labels of every prefix of every question in ``orders`` orders.

    Raises:
        ConfigurationError: No pools, or a pool without ``scorer``'s step scores.
    """
    if not pools:
        raise ConfigurationError("fitting a stop rule needs at least one question")
    rng = np.random.default_rng(seed)
    rows: list[list[float]] = []
    now: list[bool] = []
    gain: list[bool] = []
    for prepared in pools:
        size = len(prepared.correct)
        for _ in range(orders):
            drawn = _candidates(prepared, scorer, rng.permutation(size).tolist())
            at_cap, _ = answer_features(drawn, selection, prepared.equivalent)
            right_at_cap = at_cap is not None and bool(drawn[at_cap].correct)
            for n in range(1, size + 1):
                chosen, features = answer_features(drawn[:n], selection, prepared.equivalent)
                right_now = chosen is not None and bool(drawn[chosen].correct)
                rows.append(features)
                now.append(right_now)
                gain.append(right_at_cap and not right_now)
    return np.asarray(rows), np.asarray(now), np.asarray(gain)


def fit_answer_stop(
    pools: Sequence[PreparedPool],
    scorer: str,
    *,
    selection: SelectionRule = "weighted_vote",
    orders: int = 10,
    seed: int = 0,
    l2: float = 1.0,
    metadata: dict[str, str | int | float | bool] | None = None,
) -> AnswerStopModel:
    """An :class:`AnswerStopModel` fitted on ``pools`` with ``scorer``'s (calibrated) scores."""
    x, now, gain = stop_rule_examples(pools, scorer, selection=selection, orders=orders, seed=seed)
    model = AnswerStopModel(
        l2=l2, selection=selection, metadata={"scorer": scorer, **(metadata or {})}
    )
    return model.fit(x, now, gain)


def answer_stop_policies(
    name: str,
    model: AnswerStopModel,
    scorer: str,
    *,
    max_samples: int,
    thresholds: Sequence[float] = STOP_THRESHOLDS,
    futilities: Sequence[float] = FUTILITIES,
    futile_threshold: float = FUTILE_THRESHOLD,
) -> list[Policy]:
    """Two curves of the same fitted rule.

    ``answer-stop[NAME]@T`` stops only once the returned answer is right with
    probability ``T``, at every threshold; ``answer-stop-futile[NAME]@F`` stops
    at ``futile_threshold`` or once more samples fix the answer with probability
    below ``F``, at every futility level (on real pools the futility level is
    the knob that trades accuracy for compute).
    """

    def policy(family: str, label: str, threshold: float, futility: float | None) -> Policy:
        return Policy(
            name=f"{family}@{label}",
            family=family,
            strategy=AnswerConfidenceStop(
                model=model, threshold=threshold, futility=futility, selection=model.selection
            ),
            scorer=scorer,
            target_confidence=threshold,
            max_samples=max_samples,
        )

    return [
        *(policy(f"answer-stop[{name}]", f"{t:g}", t, None) for t in thresholds),
        *(policy(f"answer-stop-futile[{name}]", f"{f:g}", futile_threshold, f) for f in futilities),
    ]


class CrossFitted(Strategy):
    """Replay only: each question runs the strategy fitted without it (k-fold cross-fitting).

    With two folds, every question of the pool is evaluated by a rule fitted on
    the other half, so one report covers every question and its bootstrap
    pairs every policy on the same draws.
    """

    name: ClassVar[str] = "cross_fitted"
    requires_prm: ClassVar[bool] = True

    by_question: dict[str, Strategy]
    """Question text -> the strategy fitted on the fold without it."""

    @model_validator(mode="after")
    def _one_selection(self) -> CrossFitted:
        rules = {(s.selection, s.aggregation) for s in self.by_question.values()}
        if len(rules) != 1:
            raise ConfigurationError(f"cross-fitted strategies must select alike, got {rules}")
        return self

    def plan(self, state: RunState) -> Plan:
        try:
            strategy = self.by_question[state.question]
        except KeyError:
            raise ConfigurationError(f"no fold fitted a strategy for {state.question!r}") from None
        return (yield from strategy.plan(state))


def cross_fitted_policies(
    folds: Sequence[tuple[Sequence[QuestionPool], list[Policy]]],
) -> list[Policy]:
    """One policy per name from per-fold policies: fold k's strategy serves fold k's questions.

    Raises:
        ConfigurationError: The folds' policy names differ, or two questions share a text
            (strategies are looked up by question text).
    """
    names = [[p.name for p in policies] for _, policies in folds]
    if any(n != names[0] for n in names):
        raise ConfigurationError("every fold must build the same policies")
    texts = [pool.question for chosen, _ in folds for pool in chosen]
    if len(set(texts)) < len(texts):
        raise ConfigurationError("cross-fitting needs distinct question texts in the pools")
    merged = []
    for i, first in enumerate(folds[0][1]):
        by_question = {
            pool.question: policies[i].strategy for chosen, policies in folds for pool in chosen
        }
        strategy = CrossFitted(
            by_question=by_question,
            selection=first.strategy.selection,
            aggregation=first.strategy.aggregation,
        )
        merged.append(first.model_copy(update={"strategy": strategy}))
    return merged


def sample_scorer_policies(
    pool_size: int,
    scorer: str,
    *,
    confidences: Sequence[float] = SCORER_CONFIDENCES,
    selection: SelectionRule = "weighted_vote",
    quantile: float = 0.1,
    filtered: bool = False,
    sizes: Sequence[int] = (1, 2, 4, 8, 16, 24, 32, 64),
) -> list[Policy]:
    """The policies for a scorer that scores finished samples but not a bare question.

    ``first-sample-ias[S]@C`` reads ``p`` off the first sample's score;
    ``sequential-ias-1[S]@C`` stops one sample at a time on the drawn samples'
    scores; with ``filtered``, DeepConf's offline filter as best-of-N
    (``bon{n}-top10[S]``/``bon{n}-top90[S]``: a confidence-weighted vote over the
    10% or 90% most confident samples).
    """
    policies: list[Policy] = []
    rules = (
        ("first-sample-ias", FirstSampleIAS(selection=selection, quantile=quantile)),
        ("sequential-ias-1", SequentialAdaptiveBestOfN(
            selection=selection, quantile=quantile, round_size=1, question_prior=0.5
        )),
    )  # fmt: skip
    for prefix, strategy in rules:
        policies += [
            Policy(
                name=f"{prefix}[{scorer}]@{confidence:g}",
                family=f"{prefix}[{scorer}]",
                strategy=strategy,
                scorer=scorer,
                target_confidence=confidence,
                max_samples=pool_size,
            )
            for confidence in confidences
        ]
    if filtered:
        filtered_rules: tuple[tuple[str, SelectionRule], ...] = (
            ("top10", "filtered_vote_top10"),
            ("top90", "filtered_vote_top90"),
        )
        for label, rule in filtered_rules:
            policies += [
                Policy(
                    name=f"bon{n}-{label}[{scorer}]",
                    family=f"best-of-n ({label}, {scorer})",
                    strategy=BestOfN(n=n, selection=rule),
                    scorer=scorer,
                    max_samples=n,
                )
                for n in sorted({*(size for size in sizes if size <= pool_size), pool_size})
            ]
    return policies


__all__ = [
    "FUTILE_THRESHOLD",
    "FUTILITIES",
    "SCORER_CONFIDENCES",
    "STOP_THRESHOLDS",
    "CrossFitted",
    "answer_stop_policies",
    "cross_fitted_policies",
    "fit_answer_stop",
    "sample_scorer_policies",
    "stop_rule_examples",
]

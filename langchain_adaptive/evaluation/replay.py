"""Replay mode: run any strategy on recorded pools, with no model calls.

A strategy is a plan of actions (see :mod:`langchain_adaptive.strategies.base`);
here a driver answers them from the pool instead of a model: ``Draw(n)`` hands
out the next ``n`` recorded samples in a given order, ``EstimateQuestion`` the
recorded estimate of the named estimator (or, for ``"oracle"``, the question's
true success rate in the pool), ``ScoreCandidates`` the recorded step
estimates. The same plan code therefore makes the same decisions on the same
samples as a live run, and many policies can be compared side by side on one
recording, over many random sample orders for bootstrap intervals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive.answers import AnswerEquivalence, answers_match, group_answers
from langchain_adaptive.budget import BudgetLimits, BudgetTracker
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import ORACLE, QuestionPool
from langchain_adaptive.results import Candidate, SuccessEstimate, TokenUsage
from langchain_adaptive.selection import aggregate, select
from langchain_adaptive.strategies import (
    Decision,
    Draw,
    EstimateQuestion,
    RunState,
    ScoreCandidates,
    Strategy,
)


class Policy(BaseModel):
    """A strategy with its settings and the estimator it budgets and scores with."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    """Unique label, e.g. ``"bon8-majority"`` or ``"ias[probe]@0.9"``."""
    family: str
    """Policies of one family differ only in one knob; they form one curve in the plots."""
    strategy: Strategy
    estimator: str | None = None
    """Recorded estimator for question estimates (a PRM name, a calibrated name, ``"oracle"``)."""
    scorer: str | None = None
    """Recorded estimator for sample scores (selection); defaults to ``estimator``."""
    target_confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    max_samples: int = Field(ge=1)

    @property
    def score_source(self) -> str | None:
        return self.scorer or self.estimator


@dataclass(frozen=True, slots=True)
class QuestionOutcome:
    """What one policy did on one question."""

    samples: int
    tokens: int
    correct: bool
    """The selected answer is correct."""
    covered: bool
    """Some drawn sample is correct."""
    latency_s: float
    """Recorded wall time of the drawn samples."""
    decided: int
    stop_reason: str


_NO_USAGE = TokenUsage()
"""Shared by replayed candidates: replay accounts tokens from the pool, not from them."""


class _ClassEquivalence:
    """Answer equivalence from precomputed classes: a dict lookup, not a parse.

    Its ``key`` lets :func:`~langchain_adaptive.answers.group_answers` group in
    linear time, which keeps vote-based stopping rules cheap on large pools.
    """

    def __init__(self, labels: dict[str, int | None]) -> None:
        self.labels = labels

    def key(self, answer: str) -> object:
        return self.labels.get(answer, answer)

    def __call__(self, a: str, b: str) -> bool:
        return self.key(a) == self.key(b)


class PreparedPool:
    """A pool with what every replay needs precomputed: answer classes, grades, costs."""

    def __init__(self, pool: QuestionPool, equivalent: AnswerEquivalence) -> None:
        self.pool = pool
        answers = [s.answer for s in pool.samples]
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        self.equivalent = _ClassEquivalence(
            dict(zip(distinct, group_answers(distinct, equivalent), strict=True))
        )
        self.correct = [s.correct for s in pool.samples]
        self.tokens = [s.output_tokens for s in pool.samples]
        self.latency = [s.latency_s for s in pool.samples]
        self.success_rate = pool.success_rate
        self._scores: dict[tuple[str, str], list[float]] = {}

    def question_estimate(self, estimator: str) -> SuccessEstimate:
        if estimator == ORACLE:
            return SuccessEstimate.point(self.success_rate)
        try:
            return self.pool.question_estimates[estimator]
        except KeyError:
            raise ConfigurationError(
                f"question {self.pool.id!r} has no estimate from {estimator!r}; it has "
                f"{sorted(self.pool.estimators())}"
            ) from None

    def scores(self, scorer: str, aggregation: str) -> list[float]:
        """Each sample's aggregated score from ``scorer``'s recorded step estimates."""
        key = (scorer, aggregation)
        if key not in self._scores:
            values = []
            for sample in self.pool.samples:
                if scorer not in sample.step_estimates:
                    raise ConfigurationError(
                        f"question {self.pool.id!r} has no step scores from {scorer!r}; "
                        f"record with it in score_steps_with, or select by majority vote"
                    )
                estimates = sample.step_estimates[scorer]
                values.append(aggregate(estimates, aggregation) if estimates else 0.0)  # type: ignore[arg-type]
            self._scores[key] = values
        return self._scores[key]


def prepare_pools(
    pools: Sequence[QuestionPool], equivalent: AnswerEquivalence = answers_match
) -> list[PreparedPool]:
    """Precompute answer classes for every pool (the costly part of replay, done once)."""
    return [PreparedPool(pool, equivalent) for pool in pools]


def replay_question(
    policy: Policy,
    prepared: PreparedPool,
    order: Sequence[int] | None = None,
) -> QuestionOutcome:
    """Run ``policy`` on one recorded question, drawing samples in ``order``.

    Raises:
        ConfigurationError: The pool has fewer samples than the policy may draw,
            lacks the estimates the policy needs, or the strategy searches over
            steps (pools hold whole samples only).
    """
    if policy.strategy.stepwise:
        raise ConfigurationError(_stepwise_problem(policy))
    size = len(prepared.correct)
    if policy.max_samples > size:
        raise ConfigurationError(
            f"policy {policy.name!r} may draw {policy.max_samples} samples but question "
            f"{prepared.pool.id!r} has only {size} recorded"
        )
    order = range(size) if order is None else order
    strategy = policy.strategy
    state = RunState(
        question=prepared.pool.question,
        target_confidence=policy.target_confidence,
        tracker=BudgetTracker(BudgetLimits(max_samples=policy.max_samples)),
        has_prm=policy.score_source is not None or policy.estimator is not None,
        equivalent=prepared.equivalent,
    )
    candidates = state.candidates
    drawn: list[int] = []
    plan = strategy.plan(state)
    outcome: object = None
    try:
        while True:
            action = plan.send(outcome)
            if isinstance(action, EstimateQuestion):
                if policy.estimator is None:
                    raise ConfigurationError(
                        f"policy {policy.name!r}: strategy {strategy.name!r} asks for a question "
                        "estimate but the policy names no estimator"
                    )
                outcome = prepared.question_estimate(policy.estimator)
                state.question_estimate = outcome
            elif isinstance(action, Draw):
                positions = list(order[len(drawn) : len(drawn) + state.allowance(action.n)])
                new = [
                    # Every field given: pydantic's defaults are slow to construct.
                    Candidate.model_construct(
                        index=len(candidates) + offset,
                        text=prepared.pool.samples[position].text,
                        steps=prepared.pool.samples[position].steps,
                        answer=prepared.pool.samples[position].answer,
                        step_estimates=None,
                        score=None,
                        usage=_NO_USAGE,
                        finish_reason=None,
                        correct=prepared.correct[position],
                    )
                    for offset, position in enumerate(positions)
                ]
                state.tracker.record_samples(
                    [TokenUsage(output_tokens=prepared.tokens[i]) for i in positions]
                )
                drawn.extend(positions)
                candidates.extend(new)
                outcome = new
            elif isinstance(action, ScoreCandidates):
                source = policy.score_source
                if source is not None:
                    scores = prepared.scores(source, strategy.aggregation)
                    recorded = prepared.pool.samples
                    for candidate, position in zip(candidates, drawn, strict=True):
                        candidate.score = scores[position]
                        candidate.step_estimates = recorded[position].step_estimates[source]
                outcome = None
            else:  # pragma: no cover - the protocol has three actions
                raise TypeError(f"unknown strategy action {action!r}")
    except StopIteration as stop:
        decision: Decision = stop.value
    chosen = select(candidates, strategy.selection, equivalent=prepared.equivalent)
    correct = chosen.index is not None and bool(candidates[chosen.index].correct)
    return QuestionOutcome(
        samples=len(drawn),
        tokens=sum(prepared.tokens[i] for i in drawn),
        correct=correct,
        covered=any(prepared.correct[i] for i in drawn),
        latency_s=sum(prepared.latency[i] for i in drawn),
        decided=decision.decided_samples,
        stop_reason=decision.stop_reason,
    )


class Outcomes:
    """What every policy did on every question, over bootstrap replicates.

    Arrays have shape ``(replicates + 1, policies, questions)``. Replicate 0 is
    the run itself on every question (the point estimate); each later replicate
    resamples questions with replacement (``question_index``) and, in replay,
    also shuffles every pool's sample order, for bootstrap intervals.
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        success_rates: Sequence[float],
        *,
        replicates: int,
        pool_size: int,
    ) -> None:
        if not success_rates:
            raise ConfigurationError("an evaluation needs at least one question")
        if not policies:
            raise ConfigurationError("an evaluation needs at least one policy")
        names = [p.name for p in policies]
        if len(set(names)) < len(names):
            raise ConfigurationError(f"policy names must be unique: {names}")
        if replicates < 0:
            raise ConfigurationError(f"replicates must be >= 0, got {replicates}")
        self.policies = list(policies)
        self.success_rates = np.asarray(success_rates, dtype=np.float64)
        """Each question's true (replay) or observed (live) success rate of one sample."""
        self.pool_size = pool_size
        shape = (replicates + 1, len(policies), len(success_rates))
        self.samples = np.zeros(shape, dtype=np.int32)
        self.tokens = np.zeros(shape, dtype=np.int64)
        self.correct = np.zeros(shape, dtype=bool)
        self.covered = np.zeros(shape, dtype=bool)
        self.latency = np.zeros(shape, dtype=np.float64)
        self.question_index = np.tile(np.arange(len(success_rates)), (replicates + 1, 1))
        self.elapsed_s = 0.0
        """Time the harness took to fill the table."""
        self.failures: list[str] = []
        """Policy and question of every strategy that raised (counted wrong, no compute)."""

    @property
    def replicates(self) -> int:
        return self.samples.shape[0] - 1

    @property
    def questions(self) -> int:
        return self.samples.shape[2]

    def put(self, r: int, p: int, q: int, outcome: QuestionOutcome) -> None:
        self.samples[r, p, q] = outcome.samples
        self.tokens[r, p, q] = outcome.tokens
        self.correct[r, p, q] = outcome.correct
        self.covered[r, p, q] = outcome.covered
        self.latency[r, p, q] = outcome.latency_s

    def resample_questions(self, rng: np.random.Generator) -> None:
        """Draw each replicate's questions with replacement (replicate 0 keeps all)."""
        n = self.questions
        self.question_index[1:] = rng.integers(0, n, (self.replicates, n))

    def metric(self, name: str) -> np.ndarray:
        """Per replicate and policy, the mean of ``name`` over that replicate's questions.

        ``name`` is one of ``samples``, ``tokens``, ``correct`` (accuracy),
        ``covered`` (coverage), ``latency``. Shape ``(replicates + 1, policies)``.
        """
        values = getattr(self, name).astype(np.float64)
        picked = np.take_along_axis(values, self.question_index[:, None, :], axis=2)
        return picked.mean(axis=2)


FAILED_OUTCOME = QuestionOutcome(0, 0, False, False, 0.0, 0, "error")
"""Recorded for a policy whose strategy raised on a question: counted wrong, no compute."""


def _stepwise_problem(policy: Policy) -> str:
    return (
        f"policy {policy.name!r} uses step-level search ({policy.strategy.name!r}); pools hold "
        "whole samples only, so run it live (`langchain-adaptive bench live`)"
    )


def _check_servable(pools: Sequence[PreparedPool], policies: Sequence[Policy]) -> None:
    """Refuse up front what no question could serve, naming it, rather than 0 on every one."""
    problems = []
    for policy in policies:
        if policy.strategy.stepwise:
            problems.append(_stepwise_problem(policy))
            continue
        short = [p.pool.id for p in pools if len(p.correct) < policy.max_samples]
        if short:
            problems.append(
                f"policy {policy.name!r} may draw {policy.max_samples} samples; "
                f"{len(short)} question(s) have fewer (e.g. {short[0]!r})"
            )
        for name in {policy.estimator, policy.score_source} - {None, ORACLE}:
            missing = [p.pool.id for p in pools if name not in p.pool.question_estimates]
            if missing:
                problems.append(
                    f"policy {policy.name!r} needs estimator {name!r}; {len(missing)} "
                    f"question(s) lack it (e.g. {missing[0]!r})"
                )
    if problems:
        raise ConfigurationError("; ".join(problems))


def replay(
    pools: Sequence[PreparedPool],
    policies: Sequence[Policy],
    *,
    replicates: int = 200,
    seed: int = 0,
) -> Outcomes:
    """Every policy on every pool: in recorded order, then ``replicates`` shuffled resamples.

    Every policy of one replicate sees the same sample order, so differences
    between policies are not differences of luck.

    Raises:
        ConfigurationError: No pools or policies, repeated policy names, or a
            policy the pools cannot serve (too few samples, a missing estimator).
    """
    started = time.perf_counter()
    outcomes = Outcomes(
        policies,
        [prepared.success_rate for prepared in pools],
        replicates=replicates,
        pool_size=max((len(prepared.correct) for prepared in pools), default=0),
    )
    _check_servable(pools, policies)
    rng = np.random.default_rng(seed)
    outcomes.resample_questions(rng)
    for r in range(replicates + 1):
        for q, prepared in enumerate(pools):
            size = len(prepared.correct)
            order = range(size) if r == 0 else rng.permutation(size).tolist()
            for p, policy in enumerate(policies):
                try:
                    outcome = replay_question(policy, prepared, order)
                except Exception as error:  # one failing strategy must not lose the others
                    outcomes.failures.append(
                        f"{policy.name} on {prepared.pool.id}: {type(error).__name__}: {error}"
                    )
                    outcome = FAILED_OUTCOME
                outcomes.put(r, p, q, outcome)
    outcomes.elapsed_s = time.perf_counter() - started
    return outcomes


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of bootstrap values (``None`` if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def expected_coverage(success_rates: np.ndarray, samples: np.ndarray) -> float:
    """Mean over questions of 1 - (1 - p)^n: the coverage an allocation reaches on average."""
    return float(np.mean(1.0 - (1.0 - success_rates) ** samples))


def oracle_samples(
    success_rates: Sequence[float], target: float, *, cap: int, floor: int = 1
) -> float | None:
    """The fewest mean samples per question whose expected coverage reaches ``target``.

    Knowing every question's true success rate ``p``, the marginal coverage of a
    question's next sample, ``p (1 - p)^n``, only shrinks; so adding samples
    greedily to the question with the largest marginal gain is optimal. Every
    question gets at least ``floor`` (it must be answered) and at most ``cap``.
    Returns ``None`` when even ``cap`` samples everywhere miss the target.
    """
    import heapq

    rates = [min(1.0, max(0.0, p)) for p in success_rates]
    n = [floor] * len(rates)
    total_needed = target * len(rates)
    covered = sum(1.0 - (1.0 - p) ** floor for p in rates)
    heap = [(-(p * (1.0 - p) ** floor), i) for i, p in enumerate(rates) if p > 0 and floor < cap]
    heapq.heapify(heap)
    while covered < total_needed - 1e-12:
        if not heap:
            return None
        gain, i = heapq.heappop(heap)
        covered -= gain
        n[i] += 1
        if n[i] < cap:
            p = rates[i]
            heapq.heappush(heap, (-(p * (1.0 - p) ** n[i]), i))
    return sum(n) / len(n)


def success_bin(p: float) -> str:
    """The difficulty bin of a question by its true success rate in the pool."""
    if p <= 0.0:
        return "p=0"
    upper = min(4, max(1, math.ceil(p * 4)))
    return f"p<={upper / 4:.2f}"


SUCCESS_BINS = ("p=0", "p<=0.25", "p<=0.50", "p<=0.75", "p<=1.00")


__all__ = [
    "SUCCESS_BINS",
    "Outcomes",
    "Policy",
    "PreparedPool",
    "QuestionOutcome",
    "expected_coverage",
    "interval",
    "oracle_samples",
    "prepare_pools",
    "replay",
    "replay_question",
    "success_bin",
]

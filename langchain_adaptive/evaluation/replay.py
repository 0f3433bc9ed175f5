"""Replay mode: run any strategy on recorded pools, with no model calls.

A strategy is a plan of actions (see :mod:`langchain_adaptive.strategies._base`);
here a driver answers them from the pool instead of a model: ``Draw(n)`` hands
out the next ``n`` recorded samples in a given order, ``EstimateQuestion`` the
recorded estimate of the named estimator (or, for ``"oracle"``, the question's
true success rate in the pool), ``ScoreCandidates`` the recorded step
estimates. The same plan code therefore makes the same decisions on the same
samples as a live run, and many policies can be compared side by side on one
recording, over many random sample orders for bootstrap intervals (or over
fixed orders from a file, :func:`load_orders`, to compare with another tool on
exactly the same draws).

Three recorded sources feed a policy, each named on it: the *estimator* whose
question-alone estimate a budgeting strategy asks for, the *scorer* whose
step scores selection ranks by (``candidate.score``), and the *step source*
whose step estimates the strategy sees on its candidates (what a rule that
stops on what it drew reads; by default the estimator's where recorded, else
the scorer's). A scorer that cannot score the question alone (a reward model,
a self-confidence signal) therefore serves every policy that does not budget
on a question estimate.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive._selection import aggregate, select_finalists
from langchain_adaptive.answers import AnswerEquivalence, answers_match, group_answers
from langchain_adaptive.budget import BudgetLimits, BudgetTracker
from langchain_adaptive.confidence import ConfidenceStop, confidence_stop_at
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation.pools import ORACLE, QuestionPool
from langchain_adaptive.results import Candidate, SuccessEstimate, TokenUsage
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
    """Recorded estimator whose question-alone estimates the strategy budgets on (a PRM
    name, a calibrated name, ``"oracle"``); every question must have one. Leave it
    ``None`` for a strategy that asks for none and name its sources below."""
    scorer: str | None = None
    """Recorded estimator whose step scores rank samples for selection; defaults to
    ``estimator``."""
    step_source: str | None = None
    """Recorded estimator whose step estimates the strategy sees on its candidates (a
    rule that stops on what it drew reads them); ``None``: the estimator's where the
    pool records its step scores, else the scorer's."""
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
        self.mean_tokens = sum(self.tokens) / len(self.tokens)
        """Mean generated tokens of one recorded sample: the oracle's cost per sample."""
        self.step_sources = frozenset.intersection(
            *(frozenset(s.step_estimates) for s in pool.samples)
        )
        """Estimators whose step scores every sample of the question has."""
        self._scores: dict[tuple[str, str], list[float]] = {}
        self.has_token_confidences = all(
            s.token_confidences or s.output_tokens == 0 for s in pool.samples
        )
        """Every sample carries its token confidences (``--record-logprobs``)."""

    def question_estimate(self, estimator: str) -> SuccessEstimate:
        if estimator == ORACLE:
            return SuccessEstimate.point(self.success_rate)
        try:
            return self.pool.question_estimates[estimator]
        except KeyError:
            raise ConfigurationError(
                f"question {self.pool.id!r} has no question-alone estimate from "
                f"{estimator!r}; it has {sorted(self.pool.estimators())}"
                + (_SAMPLES_ONLY.format(name=estimator) if estimator in self.step_sources else "")
            ) from None

    def step_estimates(self, source: str) -> list[list[SuccessEstimate]]:
        """Each sample's recorded step estimates from ``source``."""
        if source not in self.step_sources:
            raise ConfigurationError(
                f"question {self.pool.id!r} has samples without step scores from {source!r}"
            )
        return [sample.step_estimates[source] for sample in self.pool.samples]

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
    if policy.strategy.stepwise or policy.strategy.revises:
        raise ConfigurationError(_stepwise_problem(policy))
    size = len(prepared.correct)
    if policy.max_samples > size:
        raise ConfigurationError(
            f"policy {policy.name!r} may draw {policy.max_samples} samples but question "
            f"{prepared.pool.id!r} has only {size} recorded"
        )
    order = range(size) if order is None else order
    strategy = policy.strategy
    score_source = policy.score_source
    step_source = policy.step_source
    if step_source is None:
        step_source = (
            policy.estimator if policy.estimator in prepared.step_sources else score_source
        )
    scored = 0  # candidates[:scored] carry their scores: recorded scores never change
    state = RunState(
        question=prepared.pool.question,
        target_confidence=policy.target_confidence,
        tracker=BudgetTracker(BudgetLimits(max_samples=policy.max_samples)),
        has_prm=score_source is not None or step_source is not None,
        equivalent=prepared.equivalent,
    )
    state.stops_on_confidence = True  # a recorded sample is cut where the stop would fire
    candidates = state.candidates
    drawn: list[int] = []
    spent: list[int] = []
    """Tokens each drawn sample cost: recorded, or up to where a confidence stop fired."""
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
                if action.stop_on_confidence is None:
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
                            token_logprobs=None,
                            token_confidences=None,
                        )
                        for offset, position in enumerate(positions)
                    ]
                    costs = [prepared.tokens[i] for i in positions]
                else:
                    new, costs = _confidence_draw(
                        prepared, positions, len(candidates), action.stop_on_confidence
                    )
                state.tracker.record_samples([TokenUsage(output_tokens=t) for t in costs])
                drawn.extend(positions)
                spent.extend(costs)
                candidates.extend(new)
                outcome = new
            elif isinstance(action, ScoreCandidates):
                if score_source is not None:
                    scores = prepared.scores(score_source, strategy.aggregation)
                    for i in range(scored, len(candidates)):
                        candidates[i].score = scores[drawn[i]]
                if step_source is not None:
                    steps = prepared.step_estimates(step_source)
                    for i in range(scored, len(candidates)):
                        candidates[i].step_estimates = steps[drawn[i]]
                scored = len(candidates)
                outcome = None
            else:  # pragma: no cover - the protocol has three actions
                raise TypeError(f"unknown strategy action {action!r}")
    except StopIteration as stop:
        decision: Decision = stop.value
    chosen = select_finalists(
        candidates, strategy.selection, decision.finalists, equivalent=prepared.equivalent
    )
    correct = chosen.index is not None and bool(candidates[chosen.index].correct)
    return QuestionOutcome(
        samples=len(drawn),
        tokens=sum(spent),
        correct=correct,
        covered=any(bool(c.correct) for c in candidates),
        latency_s=sum(
            prepared.latency[i] * (t / prepared.tokens[i] if prepared.tokens[i] else 1.0)
            for i, t in zip(drawn, spent, strict=True)
        ),
        decided=decision.decided_samples,
        stop_reason=decision.stop_reason,
    )


def _confidence_draw(
    prepared: PreparedPool, positions: Sequence[int], start: int, request: ConfidenceStop
) -> tuple[list[Candidate], list[int]]:
    """Recorded samples as a live draw with ``request`` armed would return them, and their cost.

    A sample whose recorded token confidences fire the online stop is cut
    there, as the decoder would have cut it: its text by the share of tokens
    kept, ``finish_reason="confidence_stop"``, and only the tokens up to the
    stop counted.

    Raises:
        ConfigurationError: A sample was recorded without token confidences.
    """
    new, costs = [], []
    for offset, position in enumerate(positions):
        sample = prepared.pool.samples[position]
        confidences = sample.token_confidences or []
        if not confidences and sample.output_tokens > 0:
            raise ConfigurationError(_NO_CONFIDENCES.format(question=prepared.pool.id))
        tokens, text, finish = prepared.tokens[position], sample.text, sample.finish_reason
        cut = None
        if request.threshold is not None and confidences:
            cut = confidence_stop_at(confidences, request.threshold, request.window)
        if cut is not None:
            text = text[: len(text) * cut // len(confidences)]
            confidences, tokens, finish = confidences[:cut], min(tokens, cut), "confidence_stop"
        new.append(
            Candidate.model_construct(
                index=start + offset,
                text=text,
                steps=sample.steps if cut is None else [text],
                answer=sample.answer if cut is None else None,
                step_estimates=None,
                score=None,
                usage=_NO_USAGE,
                finish_reason=finish,
                correct=prepared.correct[position] if cut is None else False,
                token_logprobs=None,
                token_confidences=list(confidences),
            )
        )
        costs.append(tokens)
    return new, costs


_NO_CONFIDENCES = (
    "question {question!r} has samples recorded without token confidences, which "
    "deepconf's online stop reads; record the pool with `bench record --record-logprobs 20`"
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
        sample_tokens: Sequence[float] | None = None,
        recorded: Sequence[int] | None = None,
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
        self.sample_tokens = (
            None if sample_tokens is None else np.asarray(sample_tokens, dtype=np.float64)
        )
        """Each question's mean generated tokens per sample (replay), what an oracle's
        samples cost in tokens; ``None`` where unknown (live)."""
        self.recorded = None if recorded is None else np.asarray(recorded, dtype=np.int64)
        """Each question's recorded samples (replay): the oracle then draws without
        replacement, as replay does; ``None`` (live): with replacement."""
        for name, values in (("sample_tokens", self.sample_tokens), ("recorded", self.recorded)):
            if values is not None and len(values) != len(success_rates):
                raise ConfigurationError(f"{name} needs one value per question")
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
    if policy.strategy.revises:
        return (
            f"policy {policy.name!r} revises earlier attempts ({policy.strategy.name!r}); pools "
            "hold independent samples, not revisions of each other, so run it live "
            "(`langchain-adaptive bench live`)"
        )
    return (
        f"policy {policy.name!r} uses step-level search ({policy.strategy.name!r}); pools hold "
        "whole samples only, so run it live (`langchain-adaptive bench live`)"
    )


_SAMPLES_ONLY = (
    ": {name!r} scores samples, not the question alone, so it serves policies that need no "
    "question estimate (best-of-N by its scores, weighted vote, rules that stop on drawn "
    "samples' scores); budget IAS on another estimator"
)


def _check_servable(pools: Sequence[PreparedPool], policies: Sequence[Policy]) -> None:
    """Refuse up front what no question could serve, naming it, rather than 0 on every one.

    A policy needs question estimates only from the estimator it budgets on,
    and step scores only from the sources it reads them from (its scorer when
    selection or the strategy reads scores, its explicit step source).
    """
    problems = []
    for policy in policies:
        if policy.strategy.stepwise or policy.strategy.revises:
            problems.append(_stepwise_problem(policy))
            continue
        if getattr(policy.strategy, "reads_token_confidences", False):
            bare = [p.pool.id for p in pools if not p.has_token_confidences]
            if bare:
                problems.append(
                    f"policy {policy.name!r}: "
                    + _NO_CONFIDENCES.format(question=bare[0])
                    + f" ({len(bare)} question(s) lack them)"
                )
                continue
        short = [p.pool.id for p in pools if len(p.correct) < policy.max_samples]
        if short:
            problems.append(
                f"policy {policy.name!r} may draw {policy.max_samples} samples; "
                f"{len(short)} question(s) have fewer (e.g. {short[0]!r})"
            )
        estimator = policy.estimator
        if estimator not in (None, ORACLE):
            missing = [p for p in pools if estimator not in p.pool.question_estimates]
            if missing:
                problems.append(
                    f"policy {policy.name!r} budgets on question estimates from {estimator!r}; "
                    f"{len(missing)} question(s) have none (e.g. {missing[0].pool.id!r})"
                    + (
                        _SAMPLES_ONLY.format(name=estimator)
                        if all(estimator in p.step_sources for p in missing)
                        else ""
                    )
                )
        for source in _step_sources_read(policy):
            unscored = [p.pool.id for p in pools if source not in p.step_sources]
            if unscored:
                problems.append(
                    f"policy {policy.name!r} reads step scores from {source!r}; "
                    f"{len(unscored)} question(s) have samples without them "
                    f"(e.g. {unscored[0]!r}): record or import {source!r}'s scores of every "
                    "sample, or select by majority vote"
                )
    if problems:
        raise ConfigurationError("; ".join(problems))


def _step_sources_read(policy: Policy) -> set[str]:
    """The recorded step-score sources a policy cannot run without."""
    sources = {policy.step_source, policy.scorer}
    if policy.strategy.needs_scores:
        sources.add(policy.score_source)
    return sources - {None, ORACLE}  # type: ignore[return-value]


def replay(
    pools: Sequence[PreparedPool],
    policies: Sequence[Policy],
    *,
    replicates: int = 200,
    seed: int = 0,
    orders: SampleOrders | None = None,
) -> Outcomes:
    """Every policy on every pool: in recorded order, then ``replicates`` shuffled resamples.

    Every policy of one replicate sees the same sample order, so differences
    between policies are not differences of luck. With ``orders`` (see
    :func:`load_orders`), replicate ``r`` draws every question's samples in
    its order ``r`` (replicate 0 included) instead, so another tool replayed on
    the same orders sees exactly the same draws; questions are still resampled
    for the bootstrap.

    Raises:
        ConfigurationError: No pools or policies, repeated policy names, a
            policy the pools cannot serve (too few samples, a missing estimator),
            or ``orders`` that do not fit the pools.
    """
    started = time.perf_counter()
    outcomes = Outcomes(
        policies,
        [prepared.success_rate for prepared in pools],
        replicates=replicates,
        pool_size=max((len(prepared.correct) for prepared in pools), default=0),
        sample_tokens=[prepared.mean_tokens for prepared in pools],
        recorded=[len(prepared.correct) for prepared in pools],
    )
    _check_servable(pools, policies)
    fixed = None if orders is None else check_orders(orders, pools, replicates + 1)
    rng = np.random.default_rng(seed)
    outcomes.resample_questions(rng)
    for r in range(replicates + 1):
        for q, prepared in enumerate(pools):
            size = len(prepared.correct)
            if fixed is not None:
                order: Sequence[int] = fixed[q][r]
            else:
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


SampleOrders = Mapping[str, Sequence[Sequence[int]]] | Sequence[Sequence[int]]
"""Fixed sample orders: per question id a list of permutations, or one list for every question."""


def load_orders(path: str | os.PathLike[str]) -> SampleOrders:
    """Sample orders from a JSON file: ``{question_id: [[perm], ...]}`` or ``[[perm], ...]``.

    A list applies to every question (all must have as many samples as each
    permutation); a mapping gives each question its own. Each permutation
    lists the positions of the recorded samples in drawing order.
    :func:`check_orders` validates them against the pools.

    Raises:
        ConfigurationError: Not JSON, or not one of the two shapes.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"cannot read sample orders from {path}: {error}") from error
    shape = (
        f"{path}: sample orders must be a JSON list of permutations (every question) or an "
        "object mapping each question id to a list of permutations"
    )
    if isinstance(data, dict):
        if not all(isinstance(v, list) for v in data.values()):
            raise ConfigurationError(shape)
        return {str(k): v for k, v in data.items()}
    if not isinstance(data, list):
        raise ConfigurationError(shape)
    return data


def check_orders(
    orders: SampleOrders, pools: Sequence[PreparedPool], needed: int
) -> list[list[list[int]]]:
    """Per question (in ``pools``' order) its first ``needed`` orders, each checked.

    Raises:
        ConfigurationError: A question without orders, fewer than ``needed``
            orders, or an order that is not a permutation of the question's
            recorded samples; the message names the question and the order.
    """
    out = []
    for prepared in pools:
        qid, size = prepared.pool.id, len(prepared.correct)
        if isinstance(orders, Mapping):
            if qid not in orders:
                raise ConfigurationError(f"the sample orders have none for question {qid!r}")
            mine = orders[qid]
        else:
            mine = orders
        if len(mine) < needed:
            raise ConfigurationError(
                f"question {qid!r} has {len(mine)} sample order(s) but the run needs {needed} "
                "(replicate r draws in order r, replicate 0 included): lower --replicates "
                f"to {len(mine) - 1} or add orders"
            )
        checked = []
        for k, order in enumerate(mine[:needed]):
            if (
                not isinstance(order, Sequence)
                or isinstance(order, str)
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in order)
                or sorted(order) != list(range(size))
            ):
                raise ConfigurationError(
                    f"sample order {k} of question {qid!r} is not a permutation of "
                    f"0..{size - 1} (its {size} recorded samples): {str(order)[:80]}"
                )
            checked.append(list(order))
        out.append(checked)
    return out


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of bootstrap values (``None`` if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def oracle_allocation(
    success_rates: Sequence[float] | np.ndarray,
    target: float,
    *,
    cap: int,
    floor: int = 1,
    recorded: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray | None:
    """The fewest samples per question whose expected coverage reaches ``target``.

    Knowing every question's true success rate ``p``, the marginal coverage of a
    question's next sample only shrinks (``p (1 - p)^n`` drawing with
    replacement); so adding samples greedily to the question with the largest
    marginal gain is optimal. All gains are sorted at once: taking the largest
    ``m`` is the greedy order, since each question's gains fall with ``n``.
    Every question gets at least ``floor`` (it must be answered) and at most
    ``cap``.

    With ``recorded`` (each question's recorded samples ``S``, of which
    ``k = p S`` are correct), draws are without replacement, as replay draws
    from a pool: ``n`` draws miss with probability ``C(S - k, n) / C(S, n)``,
    so drawing all ``S`` covers a question surely, as it does in replay. Its
    gains fall with ``n`` too (their ratio is ``(S - k - n) / (S - n - 1)``).

    This is the dual of the runtime's batch allocation
    (:func:`~langchain_adaptive.strategies._allocation.allocate_budget`, which
    gives the most coverage within a total on clipped estimates): here the
    rates are true (a ``p`` of 0 or 1 is exact), draws may be without
    replacement, and the least total that reaches ``target`` is wanted.

    Returns the samples per question, or ``None`` when even ``cap`` misses.
    """
    rates = np.clip(np.asarray(success_rates, dtype=np.float64), 0.0, 1.0)
    n_questions = len(rates)
    draws = np.arange(cap + 1)
    if recorded is None:
        miss = (1.0 - rates[:, None]) ** draws[None, :]  # P(n draws all wrong)
    else:
        size = np.asarray(recorded, dtype=np.float64)[:, None]
        wrong = size - np.rint(rates[:, None] * size)
        left = size - draws[None, :-1]
        ratio = np.where(
            left > 0, np.maximum(wrong - draws[None, :-1], 0.0) / np.maximum(left, 1), 1
        )
        miss = np.concatenate([np.ones((n_questions, 1)), np.cumprod(ratio, axis=1)], axis=1)
    counts = np.full(n_questions, floor, dtype=np.int64)
    tolerance = 1e-12 * n_questions  # the mean coverage may fall 1e-12 short
    needed = target * n_questions - float(np.sum(1.0 - miss[:, floor]))
    if needed <= tolerance:
        return counts
    if floor >= cap:
        return None
    gains = (miss[:, floor:-1] - miss[:, floor + 1 :]).ravel()
    order = np.argsort(-gains, kind="stable")
    reached = np.nonzero(np.cumsum(gains[order]) >= needed - tolerance)[0]
    if reached.size == 0:
        return None
    taken = order[: int(reached[0]) + 1] // (cap - floor)
    return counts + np.bincount(taken, minlength=n_questions)


def oracle_samples(
    success_rates: Sequence[float],
    target: float,
    *,
    cap: int,
    floor: int = 1,
    recorded: Sequence[int] | None = None,
) -> float | None:
    """The fewest mean samples per question whose expected coverage reaches ``target``.

    The mean of :func:`oracle_allocation`; ``None`` when even ``cap`` misses.
    """
    counts = oracle_allocation(success_rates, target, cap=cap, floor=floor, recorded=recorded)
    return None if counts is None else float(counts.mean())


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
    "SampleOrders",
    "check_orders",
    "interval",
    "load_orders",
    "oracle_allocation",
    "oracle_samples",
    "prepare_pools",
    "replay",
    "replay_question",
    "success_bin",
]

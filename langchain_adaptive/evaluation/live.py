"""Live mode: run policies against the model itself and measure wall time too.

Each policy is an :class:`~langchain_adaptive.AdaptiveReasoningRunnable` over
the same model; questions are answered one at a time (the right driver for an
in-process model) and every answer's samples, tokens, correctness and wall
time go into the same :class:`~langchain_adaptive.evaluation.replay.Outcomes`
table replay fills, so live and replayed runs are reported alike. A question
that fails keeps its partial result; the other questions are unaffected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive._jsonl import ProgressBar
from langchain_adaptive.datasets import Problem, check_gold
from langchain_adaptive.errors import AdaptiveError, ConfigurationError
from langchain_adaptive.evaluation.replay import Outcomes, Policy, QuestionOutcome
from langchain_adaptive.evaluation.report import BenchReport, summarize
from langchain_adaptive.prm.base import ProcessRewardModel
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.selection import SelectionRule
from langchain_adaptive.strategies import build_strategy

logger = logging.getLogger(__name__)


class LivePolicy(BaseModel):
    """A replay :class:`Policy` plus the PRM object that serves its estimator live."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    policy: Policy
    prm: ProcessRewardModel | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    """Further runnable fields (``instruction``, ``answer_extractor``, ...)."""


def live_policy(
    spec: str,
    *,
    prms: Mapping[str, ProcessRewardModel],
    max_samples: int,
    target_confidence: float,
    selection: SelectionRule = "majority_vote",
) -> LivePolicy:
    """A live policy from a short spec: ``majority_vote:16``, ``ias:probe``, ``esc``, ...

    ``NAME:N`` fixes the samples of ``best_of_n``/``majority_vote``; ``ias:PRM``
    and other PRM-budgeted strategies name the PRM; vote-based strategies take
    no argument.

    Args:
        selection: How PRM-budgeted whole-solution strategies (``ias``,
            ``sequential_ias``) pick their answer. The default, majority vote,
            is what replay uses and what the ``majority_vote:N`` baseline does,
            so a live run compares like with like; ``weighted_vote`` and
            ``prm`` also score every step of every sample with the PRM, which
            costs one PRM pass per step. Step-level search always selects by
            PRM.
    """
    name, _, argument = spec.partition(":")
    settings: dict[str, Any] = {}
    prm = None
    cap = max_samples
    if name in ("best_of_n", "majority_vote") and argument:
        settings["n"] = cap = int(argument)
    strategy = build_strategy(name, **settings)
    if strategy.requires_prm and not strategy.stepwise:
        strategy = strategy.model_copy(update={"selection": selection})
    if strategy.requires_prm or strategy.needs_scores:
        if argument not in prms:
            raise ConfigurationError(
                f"policy {spec!r} needs a PRM: write {name}:PRM with PRM one of {sorted(prms)}"
            )
        prm = prms[argument]
    label = f"{name}[{argument}]@{target_confidence:g}" if prm is not None else spec
    return LivePolicy(
        policy=Policy(
            name=label,
            family=f"{name}[{argument}]" if prm is not None else name,
            strategy=strategy,
            estimator=argument if prm is not None else None,
            target_confidence=target_confidence,
            max_samples=cap,
        ),
        prm=prm,
    )


def run_live(
    model: BaseLanguageModel,
    problems: Sequence[Problem],
    policies: Sequence[LivePolicy],
    *,
    source: str,
    max_tokens_per_sample: int = 192,
    temperature: float | None = 0.7,
    replicates: int = 200,
    seed: int = 0,
    progress: bool = True,
    config: RunnableConfig | None = None,
) -> BenchReport:
    """Answer every problem with every policy, live; report as replay does, with wall time.

    Bootstrap intervals resample questions (a live run has one sample order).
    Each question's success rate, for difficulty bins and the oracle, is
    estimated from every sample any policy drew for it.
    """
    check_gold(problems)
    if not problems or not policies:
        raise ConfigurationError("a live run needs at least one problem and one policy")
    started = time.perf_counter()
    grades: list[list[bool]] = [[] for _ in problems]
    rows: list[list[QuestionOutcome]] = []
    notes: list[str] = []
    bar = ProgressBar(
        len(problems) * len(policies), 0, desc="live", unit="answer", enabled=progress
    )
    try:
        for live in policies:
            runnable = AdaptiveReasoningRunnable(
                model=model,
                prm=live.prm,
                strategy=live.policy.strategy,
                target_confidence=live.policy.target_confidence,
                max_samples=live.policy.max_samples,
                max_tokens_per_sample=max_tokens_per_sample,
                temperature=temperature,
                **live.settings,
            )
            row = []
            for q, problem in enumerate(problems):
                result, elapsed = _answer(runnable, problem, config, notes, live.policy.name)
                if result is not None:
                    grades[q].extend(bool(c.correct) for c in result.candidates)
                row.append(_outcome(result, elapsed))
                bar.add("tokens", row[-1].tokens)
                bar.step()
            rows.append(row)
    finally:
        bar.close()
    rates = [sum(g) / len(g) if g else 0.0 for g in grades]
    outcomes = Outcomes(
        [live.policy for live in policies],
        rates,
        replicates=replicates,
        pool_size=max(live.policy.max_samples for live in policies),
    )
    for p, row in enumerate(rows):
        for q, outcome in enumerate(row):
            outcomes.put(0, p, q, outcome)
    for r in range(1, replicates + 1):  # live has one sample order: copy, then resample questions
        for name in ("samples", "tokens", "correct", "covered", "latency"):
            getattr(outcomes, name)[r] = getattr(outcomes, name)[0]
    outcomes.resample_questions(np.random.default_rng(seed))
    wall = time.perf_counter() - started
    outcomes.elapsed_s = wall
    return summarize(
        outcomes,
        source=source,
        mode="live",
        seed=seed,
        baselines=[lp.policy.name for lp in policies if lp.policy.strategy.name == "best_of_n"],
        notes=[
            *notes,
            "success rates for bins and the oracle are estimated from the samples all "
            "policies drew",
        ],
        wall_s=wall,
    )


def _answer(
    runnable: AdaptiveReasoningRunnable,
    problem: Problem,
    config: RunnableConfig | None,
    notes: list[str],
    policy: str,
) -> tuple[AdaptiveResult | None, float]:
    started = time.perf_counter()
    try:
        result = runnable.invoke({"question": problem.question, "gold": problem.gold}, config)
    except AdaptiveError as error:
        logger.warning("%s on %s failed: %s", policy, problem.id, error)
        notes.append(f"{policy} failed on {problem.id}: {type(error).__name__}: {error}")
        result = error.partial
    return result, time.perf_counter() - started


def _outcome(result: AdaptiveResult | None, elapsed: float) -> QuestionOutcome:
    if result is None:
        return QuestionOutcome(0, 0, False, False, elapsed, 0, "error")
    return QuestionOutcome(
        samples=result.budget.samples_used,
        tokens=result.budget.generated_tokens,
        correct=bool(result.correct),
        covered=any(c.correct for c in result.candidates),
        latency_s=elapsed,
        decided=result.budget.decided_samples,
        stop_reason=result.stop_reason,
    )


__all__ = ["LivePolicy", "live_policy", "run_live"]

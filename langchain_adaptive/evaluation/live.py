"""Live mode: run policies against the model itself and measure wall time too.

Each policy is an :class:`~langchain_adaptive.AdaptiveReasoningRunnable` over
the same model; questions are answered one at a time (the right driver for an
in-process model) and every answer's samples, tokens, correctness and wall
time go into the same :class:`~langchain_adaptive.evaluation.replay.Outcomes`
table replay fills, so live and replayed runs are reported alike. A question
that fails keeps its partial result; the other questions are unaffected.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from langchain_adaptive._jsonl import ProgressBar
from langchain_adaptive._selection import SelectionRule
from langchain_adaptive.calibration._answer_stop import AnswerStopModel
from langchain_adaptive.errors import AdaptiveError, ConfigurationError
from langchain_adaptive.evaluation.datasets import Problem, check_gold
from langchain_adaptive.evaluation.policies import FIXED_SIZES, standard_policies
from langchain_adaptive.evaluation.pools import PoolFile, PoolMismatchError, answer_equivalence
from langchain_adaptive.evaluation.replay import (
    FAILED_OUTCOME,
    Outcomes,
    Policy,
    PreparedPool,
    QuestionOutcome,
    prepare_pools,
    replay_question,
)
from langchain_adaptive.evaluation.report import BenchReport, summarize
from langchain_adaptive.prm._base import ProcessRewardModel
from langchain_adaptive.prm._split import SplitPRM
from langchain_adaptive.results import AdaptiveResult
from langchain_adaptive.runnable import AdaptiveReasoningRunnable
from langchain_adaptive.strategies import AdaptiveBestOfN, build_strategy

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
    scorer: str | None = None,
    floor_samples: int | None = None,
    stop_model: AnswerStopModel | None = None,
) -> LivePolicy:
    """A live policy from a short spec: ``majority_vote:16``, ``ias:probe``, ``esc``, ...

    ``NAME:N`` fixes the samples of ``best_of_n``/``majority_vote``; ``ias:PRM``
    and other PRM-budgeted strategies name the PRM; vote-based strategies take
    no argument. A PRM-budgeted spec may set its own target confidence
    (``ias:judge@0.7``), and IAS its own floor (``ias-floor1:probe@0.9``), so
    one run compares settings that land on equal compute. Names follow
    replay's (``ias[probe]@0.9``, ``ias-floor4[probe]@0.9``), so a live row and
    a replayed one line up.

    Args:
        selection: How PRM-budgeted whole-solution strategies (``ias``,
            ``sequential_ias``) pick their answer. The default, majority vote,
            is what replay uses and what the ``majority_vote:N`` baseline does,
            so a live run compares like with like; ``weighted_vote`` and
            ``prm`` also score every step of every sample with the PRM, which
            costs one PRM pass per step. Step-level search always selects by
            PRM.
        scorer: A PRM of ``prms`` that scores the samples instead of the
            budgeting one (replay's ``--scorer``): whole-solution strategies get
            a :class:`~langchain_adaptive.prm.SplitPRM`, and a ``best_of_n:N``
            that selects by score reads it.
        floor_samples: IAS (``ias:PRM``) draws only this many samples where the
            target is out of reach within the cap (``unreachable="floor"``),
            as replay's ``ias-floorK`` family does; a spec's own floor wins.
        stop_model: The fitted rule of ``answer_stop:PRM`` policies (their ``@T``
            is the rule's threshold); its selection rule is theirs.

    Raises:
        ConfigurationError: A PRM or scorer that ``prms`` lacks, or a spec
            that does not parse.
    """
    name, _, argument = spec.partition(":")
    argument, at, confidence = argument.partition("@")
    if at:
        target_confidence = _spec_confidence(spec, confidence)
    floored = re.fullmatch(r"(\w+)-floor(\d+)", name)
    if floored:
        name, floor_samples = floored[1], int(floored[2])
        if floor_samples < 1:
            raise ConfigurationError(f"policy {spec!r}: a floor is at least 1 sample")
    settings: dict[str, Any] = {}
    cap = max_samples
    fixed = name in ("best_of_n", "majority_vote")
    if fixed and argument:
        try:
            settings["n"] = cap = int(argument)
        except ValueError:
            raise ConfigurationError(f"policy {spec!r}: {name}:N takes a number") from None
    if name == "answer_stop":
        if stop_model is None:
            raise ConfigurationError(
                f"policy {spec!r} needs a fitted stop rule (bench fit-stop-rule, --stop-model)"
            )
        settings["model"] = stop_model
        settings["threshold"] = target_confidence
    strategy = build_strategy(name, **settings)
    if floored and not isinstance(strategy, AdaptiveBestOfN):
        raise ConfigurationError(f"policy {spec!r}: only IAS takes a floor")
    if at and not strategy.requires_prm:
        raise ConfigurationError(f"policy {spec!r}: only a PRM-budgeted policy takes @C")
    if scorer is not None and scorer not in prms:
        raise ConfigurationError(f"scorer {scorer!r} is not one of the PRMs {sorted(prms)}")
    if strategy.requires_prm and not strategy.stepwise and name != "answer_stop":
        strategy = strategy.model_copy(update={"selection": selection})
    prefix = name
    if floor_samples is not None and isinstance(strategy, AdaptiveBestOfN):
        strategy = strategy.model_copy(
            update={"unreachable": "floor", "floor_samples": floor_samples}
        )
        prefix = f"{name}-floor{floor_samples}"
    prm: ProcessRewardModel | None = None
    if fixed:
        if strategy.needs_scores:
            if scorer is None:
                raise ConfigurationError(f"policy {spec!r} selects by score: name a scorer")
            prm = prms[scorer]
        return LivePolicy(
            policy=Policy(
                name=spec,
                family=name,
                strategy=strategy,
                scorer=scorer if prm is not None else None,
                target_confidence=target_confidence,
                max_samples=cap,
            ),
            prm=prm,
        )
    if strategy.requires_prm or strategy.needs_scores:
        if argument not in prms:
            raise ConfigurationError(
                f"policy {spec!r} needs a PRM: write {name}:PRM with PRM one of {sorted(prms)}"
            )
        prm = prms[argument]
        if scorer is not None and scorer != argument and not strategy.stepwise:
            prm = SplitPRM(question_prm=prm, step_prm=prms[scorer])
    label = f"{prefix}[{argument}]@{target_confidence:g}" if prm is not None else spec
    return LivePolicy(
        policy=Policy(
            name=label,
            family=f"{prefix}[{argument}]" if prm is not None else name,
            strategy=strategy,
            estimator=argument if prm is not None else None,
            scorer=scorer if prm is not None and not strategy.stepwise else None,
            target_confidence=target_confidence,
            max_samples=cap,
        ),
        prm=prm,
    )


def spec_prm(spec: str) -> str | None:
    """The PRM a policy spec names (``probe`` of ``ias-floor1:probe@0.9``), or None."""
    name, _, argument = spec.partition(":")
    argument = argument.partition("@")[0]
    if not argument or name in ("best_of_n", "majority_vote"):
        return None
    return argument


def _spec_confidence(spec: str, text: str) -> float:
    try:
        confidence = float(text)
    except ValueError:
        confidence = float("nan")
    if not 0.0 < confidence < 1.0:
        raise ConfigurationError(f"policy {spec!r}: @C takes a confidence in (0, 1)")
    return confidence


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
    recorded: RecordedBaselines | None = None,
    launch: Literal["rounds", "eager"] = "rounds",
) -> BenchReport:
    """Answer every problem with every policy, live; report as replay does, with wall time.

    Bootstrap intervals resample questions (a live run has one sample order).
    Every two PRM-budgeted policies are also compared directly (paired
    differences). Each question's success rate, for difficulty bins and the oracle, is
    estimated from every sample any policy drew for it (and every recorded one).

    Args:
        recorded: Fixed baselines replayed from pools of the same questions
            (:func:`recorded_baselines`), in recorded order, so a dear baseline
            recorded once is compared question by question with cheap live
            policies, without drawing its samples again.
        launch: The runnables' ``launch``: ``"eager"`` starts a round-drawing policy's
            samples at once and cancels the rest when it stops. A row's tokens are then
            what was generated, cancelled samples' tokens included.
    """
    check_gold(problems)
    if not problems or not policies:
        raise ConfigurationError("a live run needs at least one problem and one policy")
    if recorded is not None and [p.pool.id for p in recorded.pools] != [p.id for p in problems]:
        raise ConfigurationError("recorded baselines must hold one pool per problem, in order")
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
                launch=launch,
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
    if launch == "eager":
        notes.append(
            "launch=eager: round-drawing policies started their samples at once and cancelled "
            "the rest when they stopped; their tokens include what the cancelled samples "
            "generated"
        )
    replayed = list(recorded.policies) if recorded is not None else []
    if recorded is not None:
        rows.extend(_replay_recorded(recorded, notes))
        for q, prepared in enumerate(recorded.pools):
            grades[q].extend(prepared.correct)
        notes.append(
            f"the {len(replayed)} best-of-N rows (bon*) are replayed in recorded order from "
            f"{recorded.source}: their model time is the recorded one of their samples, a "
            "live row's is its wall time"
        )
    all_policies = [live.policy for live in policies] + replayed
    adaptive = [p for p in all_policies if p.strategy.name != "best_of_n"]
    budgeted = [live.policy.name for live in policies if live.policy.estimator is not None]
    rates = [sum(g) / len(g) if g else 0.0 for g in grades]
    outcomes = Outcomes(
        all_policies,
        rates,
        replicates=replicates,
        pool_size=max(policy.max_samples for policy in all_policies),
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
    report = summarize(
        outcomes,
        source=source,
        mode="live",
        seed=seed,
        baselines=[p.name for p in all_policies if p.strategy.name == "best_of_n"],
        families=list(dict.fromkeys(p.family for p in adaptive)),
        pairs=list(itertools.combinations(budgeted, 2)),
        notes=[
            *notes,
            "success rates for bins and the oracle are estimated from the samples all "
            "policies drew",
        ],
        wall_s=wall,
    )
    return report.model_copy(
        update={
            "question_ids": [problem.id for problem in problems],
            "per_question": {
                policy.name: row for policy, row in zip(all_policies, rows, strict=True)
            },
        }
    )


class RecordedBaselines(BaseModel):
    """Fixed best-of-N policies and the recorded pools they replay on, one per live question."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    source: str
    pools: list[PreparedPool]
    policies: list[Policy]


def recorded_baselines(
    pool_file: PoolFile,
    problems: Sequence[Problem],
    *,
    source: str,
    model: str,
    max_tokens_per_sample: int,
    temperature: float | None,
    prompt: Mapping[str, Any],
    sizes: Sequence[int] = FIXED_SIZES,
    scorer: str | None = None,
) -> RecordedBaselines:
    """Fixed best-of-N baselines from a pool file recorded on the live run's questions.

    Every N of ``sizes`` the pools hold is replayed by majority vote (and by
    ``scorer``'s argmax and weighted vote when its step scores are recorded).

    Raises:
        PoolMismatchError: The pools were drawn by another model, token cap,
            temperature or prompt than the live run's, or lack a live question
            (a question's text must match too).
    """
    header = pool_file.header
    wanted = {
        "model": model,
        "max_tokens_per_sample": max_tokens_per_sample,
        "temperature": temperature,
        **{key: prompt.get(key) for key in ("instruction", "system_prompt")},
    }
    have = {**header.model_dump(), **header.settings}
    differ = [f"{k}: pools have {have.get(k)!r}, live has {v!r}" for k, v in wanted.items()
              if have.get(k) != v]  # fmt: skip
    if differ:
        raise PoolMismatchError(
            f"{source} was recorded with other settings than the live run ({'; '.join(differ)})"
        )
    by_id = {pool.id: pool for pool in pool_file.pools}
    missing = [p.id for p in problems if p.id not in by_id or by_id[p.id].question != p.question]
    if missing:
        raise PoolMismatchError(
            f"{source} lacks {len(missing)} live question(s) (e.g. {missing[0]!r}) or records "
            "another text for them"
        )
    if scorer is not None and scorer not in header.settings.get("scored_steps", []):
        raise PoolMismatchError(f"{source} holds no step scores from {scorer!r}")
    pools = [by_id[p.id] for p in problems]
    size = min(len(pool.samples) for pool in pools)
    policies = [
        policy
        for policy in standard_policies(size, scorer=scorer, sizes=sizes, oracle=False)
        if policy.family.startswith("best-of-n")
    ]
    return RecordedBaselines(
        source=source,
        pools=prepare_pools(pools, answer_equivalence(header.equivalence)),
        policies=policies,
    )


def _replay_recorded(recorded: RecordedBaselines, notes: list[str]) -> list[list[QuestionOutcome]]:
    rows = []
    for policy in recorded.policies:
        row = []
        for prepared in recorded.pools:
            try:
                row.append(replay_question(policy, prepared))
            except Exception as error:  # one failing replay must not lose the live answers
                notes.append(f"{policy.name} failed on {prepared.pool.id}: {error}")
                row.append(FAILED_OUTCOME)
        rows.append(row)
    return rows


def _answer(
    runnable: AdaptiveReasoningRunnable,
    problem: Problem,
    config: RunnableConfig | None,
    notes: list[str],
    policy: str,
) -> tuple[AdaptiveResult | None, float]:
    started = time.perf_counter()
    try:
        result: AdaptiveResult | None = runnable.invoke(
            {"question": problem.question, "gold": problem.gold}, config
        )
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
        tokens=result.budget.generated_tokens + result.budget.cancelled_tokens,
        correct=bool(result.correct),
        covered=any(c.correct for c in result.candidates),
        latency_s=elapsed,
        decided=result.budget.decided_samples,
        stop_reason=result.stop_reason,
    )


__all__ = [
    "LivePolicy",
    "RecordedBaselines",
    "live_policy",
    "recorded_baselines",
    "run_live",
    "spec_prm",
]

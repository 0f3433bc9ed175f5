"""Sequential IAS: its stopping rule, live with the fakes and replayed from a recorded pool."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.evaluation import (
    Policy,
    QuestionPool,
    prepare_pools,
    read_pools,
    record_pools,
    replay,
    replay_question,
    standard_policies,
)
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.strategies import (
    AdaptiveBestOfN,
    SequentialAdaptiveBestOfN,
    build_strategy,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."
QUESTION = "What is 7 + 8?"
SERIAL = {"max_concurrency": 1}


def _run(script: list[str], p: float, *, confidence: float = 0.9, **settings: object):
    """Sequential IAS live on the fakes: the PRM gives 0.9 to steps naming 15, else 0.1."""
    return AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=script),
        prm=ScriptedPRM(question_p={QUESTION: p}),
        strategy=SequentialAdaptiveBestOfN(**settings),  # type: ignore[arg-type]
        target_confidence=confidence,
        max_samples=12,
    ).invoke({"question": QUESTION, "gold": "15"}, SERIAL)


def test_registered_by_name() -> None:
    assert isinstance(build_strategy("sequential_ias"), SequentialAdaptiveBestOfN)


def test_a_convincing_first_round_stops_early() -> None:
    # Prior p = 0.2 asks one-shot IAS for 11 samples at C = 0.9; two scored 0.9 suffice.
    assert ias_sample_count(0.2, 0.9) == 11
    result = _run([RIGHT], 0.2, round_size=2)
    assert result.budget.samples_used == 2
    assert result.stop_reason == "adaptive_budget"
    assert result.confidence == pytest.approx(1 - 0.1 * 0.1)
    assert not result.low_confidence and result.correct


def test_doubtful_rounds_draw_more_until_the_cap() -> None:
    result = _run([WRONG], 0.5, round_size=3)
    # Each wrong sample scores 0.1: 1 - 0.9^n never reaches 0.9 within 12 samples.
    assert result.budget.samples_used == 12
    assert result.stop_reason == "max_samples"
    assert result.low_confidence
    assert result.confidence == pytest.approx(1 - 0.9**12)


def test_the_token_cap_stops_it_with_low_confidence() -> None:
    result = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[WRONG]),
        prm=ScriptedPRM(question_p={QUESTION: 0.5}),
        strategy=SequentialAdaptiveBestOfN(round_size=1),
        target_confidence=0.9,
        max_samples=12,
        max_tokens_per_sample=16,
        max_total_tokens=32,
    ).invoke(QUESTION, SERIAL)
    assert result.stop_reason == "token_budget" and result.low_confidence
    assert result.budget.generated_tokens <= 32 and result.budget.samples_used < 12


def test_each_round_draws_no_more_than_the_prior_still_asks_for() -> None:
    # Prior 0.5 at C = 0.9: one-shot IAS asks for 4, so the first round is 4, not round_size 5.
    result = _run([WRONG, WRONG, RIGHT], 0.5, round_size=5)
    first = ias_sample_count(0.5, 0.9)
    miss = 0.9**2 * 0.1 * 0.9  # samples WRONG, WRONG, RIGHT, WRONG from the cycling script
    assert first == 4
    assert result.budget.samples_used == 4  # the first round already reaches C
    assert result.confidence == pytest.approx(1 - miss)
    assert 1 - miss >= 0.9


def test_stopping_rule_matches_its_formula() -> None:
    result = _run([WRONG, WRONG, RIGHT], 0.3, round_size=1)
    misses = [0.9 if "14" in c.text else 0.1 for c in result.candidates]
    # It stopped at the first prefix of samples whose joint miss is <= 1 - C.
    prefixes = [math.prod(misses[: k + 1]) for k in range(len(misses))]
    assert prefixes[-1] <= 0.1 + 1e-12
    assert all(m > 0.1 for m in prefixes[:-1])
    assert len(misses) == 3


async def test_async_makes_the_same_decisions() -> None:
    runnable = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[WRONG, RIGHT]),
        prm=ScriptedPRM(question_p={QUESTION: 0.3}),
        strategy="sequential_ias",
        target_confidence=0.95,
        max_samples=12,
    )
    sync = runnable.invoke(QUESTION, SERIAL)
    runnable2 = runnable.model_copy(update={"model": ScriptedChatModel(responses=[WRONG, RIGHT])})
    asynchronous = await runnable2.ainvoke(QUESTION, SERIAL)
    assert sync.budget.samples_used == asynchronous.budget.samples_used
    assert sync.stop_reason == asynchronous.stop_reason


# -- replay == live ---------------------------------------------------------------

SCRIPT = [WRONG, WRONG, RIGHT, WRONG, RIGHT, WRONG, WRONG, WRONG, RIGHT, RIGHT, WRONG, RIGHT]


def _prm() -> ScriptedPRM:
    return ScriptedPRM(question_p={QUESTION: 0.3}, quantiles=(0.5, 1.0, 1.5))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> QuestionPool:
    out: Path = tmp_path_factory.mktemp("pools") / "pools.jsonl"
    summary = record_pools(
        ScriptedChatModel(responses=SCRIPT),
        [Problem(id="q0", question=QUESTION, gold="15")],
        out,
        samples=12,
        prms={"prm": _prm()},
        score_steps_with=["prm"],
        progress=False,
        config=SERIAL,
    )
    assert summary.recorded == 1 and not summary.failed
    return read_pools(out).pools[0]


@pytest.mark.parametrize(
    ("strategy", "confidence"),
    [
        (SequentialAdaptiveBestOfN(round_size=1), 0.9),
        (SequentialAdaptiveBestOfN(round_size=2, selection="majority_vote"), 0.95),
        (SequentialAdaptiveBestOfN(round_size=3, quantile=0.5, selection="prm"), 0.99),
        (SequentialAdaptiveBestOfN(round_size=4), 0.999),
    ],
    ids=lambda x: repr(x)[:60],
)
def test_replay_decides_exactly_as_live(
    recorded: QuestionPool, strategy: SequentialAdaptiveBestOfN, confidence: float
) -> None:
    live = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=SCRIPT),
        prm=_prm(),
        strategy=strategy,
        target_confidence=confidence,
        max_samples=12,
    ).invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    policy = Policy(
        name="seq",
        family="seq",
        strategy=strategy,
        estimator="prm",
        target_confidence=confidence,
        max_samples=12,
    )
    [prepared] = prepare_pools([recorded])
    replayed = replay_question(policy, prepared)
    assert replayed.samples == live.budget.samples_used
    assert replayed.decided == live.budget.decided_samples
    assert replayed.stop_reason == live.stop_reason
    assert replayed.tokens == live.budget.generated_tokens
    assert replayed.correct == bool(live.correct)


def test_the_harness_compares_sequential_with_one_shot_ias(recorded: QuestionPool) -> None:
    policies = standard_policies(12, estimators=["prm"], scorer="prm", confidences=(0.9, 0.99))
    names = [p.name for p in policies]
    assert {"sequential-ias[prm]@0.9", "ias[prm]@0.9"} <= set(names)
    assert not [n for n in names if n.startswith("sequential-ias[oracle]")]
    assert "sequential-ias[prm]@0.9" not in [
        p.name for p in standard_policies(12, estimators=["prm"], confidences=(0.9,))
    ]
    run = replay(prepare_pools([recorded]), policies, replicates=3)
    assert not run.failures
    seq = names.index("sequential-ias[prm]@0.99")
    one_shot = names.index("ias[prm]@0.99")
    assert isinstance(policies[one_shot].strategy, AdaptiveBestOfN)
    assert run.samples[0, seq, 0] >= 1 and run.samples[0, one_shot, 0] >= 1

"""Replay makes the same decisions as live on the same samples; the harness's arithmetic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation import (
    Policy,
    QuestionPool,
    RecordedSample,
    oracle_samples,
    prepare_pools,
    read_pools,
    record_pools,
    replay,
    replay_question,
    standard_policies,
    summarize,
)
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.evaluation.replay import Outcomes
from langchain_adaptive.evaluation.report import envelope_cost, report_markdown
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import (
    AdaptiveBestOfN,
    AdaptiveConsistency,
    BeamSearch,
    BestOfN,
    EarlyStoppingConsistency,
    Strategy,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."
ODD = "I think\n\nThe answer is 13."
SCRIPT = [WRONG, RIGHT, WRONG, RIGHT, RIGHT, ODD, RIGHT, WRONG, RIGHT, RIGHT, RIGHT, RIGHT]
QUESTION = "What is 7 + 8?"
SERIAL = {"max_concurrency": 1}

STRATEGIES: list[tuple[Strategy, float]] = [
    (BestOfN(n=5, selection="majority_vote"), 0.9),
    (BestOfN(n=6, selection="prm"), 0.9),
    (BestOfN(n=3, selection="weighted_vote"), 0.9),
    (AdaptiveBestOfN(selection="majority_vote"), 0.9),
    (AdaptiveBestOfN(selection="weighted_vote", unreachable="floor", floor_samples=2), 0.999),
    (AdaptiveConsistency(), 0.9),
    (EarlyStoppingConsistency(window=3), 0.9),
]


def _prm() -> ScriptedPRM:
    return ScriptedPRM(question_p={QUESTION: 0.3}, quantiles=(0.5, 1.0, 1.5))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> QuestionPool:
    out = tmp_path_factory.mktemp("pools") / "pools.jsonl"
    summary = record_pools(
        ScriptedChatModel(responses=SCRIPT),
        [Problem(id="q0", question=QUESTION, gold="15")],
        out,
        samples=12,
        prms={"prm": _prm()},
        progress=False,
        config=SERIAL,
    )
    assert summary.recorded == 1 and not summary.failed
    return read_pools(out).pools[0]


@pytest.mark.parametrize(("strategy", "confidence"), STRATEGIES, ids=lambda x: repr(x)[:40])
def test_replay_decides_exactly_as_live(
    recorded: QuestionPool, strategy: Strategy, confidence: float
) -> None:
    live = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=SCRIPT),
        prm=_prm(),
        strategy=strategy,
        target_confidence=confidence,
        max_samples=12,
    ).invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    policy = Policy(
        name="p",
        family="f",
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
    assert replayed.covered == any(c.correct for c in live.candidates)


def test_a_live_result_replays_to_itself() -> None:
    live = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=SCRIPT),
        prm=_prm(),
        strategy=AdaptiveConsistency(),
        max_samples=12,
    ).invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    pool = QuestionPool.from_result(live, id="q0")
    policy = Policy(
        name="ac",
        family="ac",
        strategy=AdaptiveConsistency(),
        max_samples=len(pool.samples),
    )
    [prepared] = prepare_pools([pool])
    out = replay_question(policy, prepared)
    assert (out.samples, out.stop_reason) == (live.budget.samples_used, live.stop_reason)


def _pool(qid: str, grades: list[bool], p_estimate: float = 0.5) -> QuestionPool:
    samples = [
        RecordedSample(
            text=f"s{i}", answer="1" if ok else str(10 + i), correct=ok, output_tokens=10
        )
        for i, ok in enumerate(grades)
    ]
    return QuestionPool(
        id=qid,
        question=f"question {qid}",
        gold="1",
        question_estimates={"est": SuccessEstimate.point(p_estimate)},
        samples=samples,
    )


def test_policies_that_need_more_than_the_pool_are_refused() -> None:
    [prepared] = prepare_pools([_pool("a", [True, False])])
    policy = Policy(name="b4", family="b", strategy=BestOfN(n=4), max_samples=4)
    with pytest.raises(ConfigurationError, match="only 2 recorded"):
        replay_question(policy, prepared)
    ias = Policy(name="i", family="i", strategy=AdaptiveBestOfN(), estimator="nope", max_samples=2)
    with pytest.raises(ConfigurationError, match="no question-alone estimate from 'nope'"):
        replay_question(ias, prepared)


def test_replay_orders_and_resamples_reproducibly() -> None:
    pools = prepare_pools([_pool(str(i), [i % 3 == 0, True, False, False]) for i in range(6)])
    policies = standard_policies(4, estimators=["est"], confidences=(0.5, 0.9))
    first = replay(pools, policies, replicates=20, seed=3)
    again = replay(pools, policies, replicates=20, seed=3)
    other = replay(pools, policies, replicates=20, seed=4)
    assert np.array_equal(first.correct, again.correct)
    assert np.array_equal(first.question_index, again.question_index)
    assert not np.array_equal(first.question_index, other.question_index)
    assert (first.question_index[0] == np.arange(6)).all()
    names = [p.name for p in policies]
    bon4 = names.index("bon4-majority")
    assert (first.samples[:, bon4] == 4).all()  # fixed N draws N whatever the order


def test_standard_policies_fit_the_pool() -> None:
    names = [p.name for p in standard_policies(16, estimators=["probe"], scorer="probe")]
    assert "bon16-majority" in names and "bon32-majority" not in names
    assert "bon8-prm[probe]" in names and "bon8-weighted[probe]" in names
    assert "ias[probe]@0.9" in names and "ias[oracle]@0.99" in names
    assert {"adaptive-consistency@0.95", "adaptive-consistency@0.6", "esc@w5", "esc@w2"} <= set(
        names
    )
    with pytest.raises(ConfigurationError, match="needs a recorded scorer"):
        standard_policies(8, selection="prm")


def test_the_oracle_spends_one_sample_on_hopeless_questions() -> None:
    pools = prepare_pools([_pool("none", [False] * 8), _pool("half", [True, False] * 4)])
    policies = [p for p in standard_policies(8, confidences=(0.9,)) if "oracle" in p.name]
    out = replay(pools, policies, replicates=0)
    assert out.samples[0, 0].tolist() == [1, 4]  # p = 0.5, C = 0.9 -> ceil(3.32) = 4


def test_floored_ias_gives_up_where_the_cap_cannot_reach_the_target() -> None:
    pools = prepare_pools([_pool("hard", [False] * 8, 0.01), _pool("easy", [True] * 8, 0.9)])
    policies = standard_policies(8, estimators=["est"], confidences=(0.9,), floor_samples=2)
    by_name = {p.name: i for i, p in enumerate(policies)}
    out = replay(pools, policies, replicates=0)
    # p = 0.01 needs ceil(log 0.1 / log 0.99) = 230 > 8: the paper spends the cap, the
    # floored rule 2; p = 0.9 needs 1 either way
    assert out.samples[0, by_name["ias[est]@0.9"]].tolist() == [8, 1]
    assert out.samples[0, by_name["ias-floor2[est]@0.9"]].tolist() == [2, 1]


def _brute_force_oracle(rates: list[float], target: float, cap: int) -> float | None:
    best = None
    for allocation in itertools.product(range(1, cap + 1), repeat=len(rates)):
        cov = sum(1 - (1 - p) ** n for p, n in zip(rates, allocation, strict=True)) / len(rates)
        if cov >= target - 1e-12:
            total = sum(allocation)
            best = total if best is None else min(best, total)
    return None if best is None else best / len(rates)


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9, 1.0]), min_size=1, max_size=3),
    target=st.floats(0.0, 1.0),
)
def test_greedy_oracle_is_optimal(rates: list[float], target: float) -> None:
    assert oracle_samples(rates, target, cap=4) == _brute_force_oracle(rates, target, 4)


def test_envelope_cost_interpolates_on_the_running_best() -> None:
    costs = np.array([4.0, 1.0, 2.0])
    values = np.array([0.9, 0.5, 0.4])  # the cost-2 setting is dominated by cost 1
    assert envelope_cost(costs, values, 0.5) == 1.0
    assert math.isclose(envelope_cost(costs, values, 0.7), 2.0 + 0.5 * 2.0)
    assert envelope_cost(costs, values, 0.95) is None
    assert envelope_cost(costs, values, 0.1) == 1.0


def test_summary_finds_the_compute_saving_of_an_informed_estimator() -> None:
    """Easy questions (p = 1) need one sample; an estimator that knows it saves compute."""
    easy = [_pool(f"e{i}", [True] * 8, p_estimate=0.95) for i in range(10)]
    hard = [_pool(f"h{i}", [False, True] * 4, p_estimate=0.2) for i in range(10)]
    prepared = prepare_pools(easy + hard)
    policies = standard_policies(8, estimators=["est"], confidences=(0.5, 0.9, 0.99))
    report = summarize(replay(prepared, policies, replicates=30, seed=0), source="synthetic")
    by_name = {s.name: s for s in report.policies}
    assert by_name["bon8-majority"].coverage == 1.0
    ratio = next(
        r
        for r in report.ratios
        if (r.baseline, r.family, r.metric) == ("bon8-majority", "ias[est]", "coverage")
    )
    # IAS at C = 0.5 already covers every question: one sample on easy ones and
    # ceil(log 0.5 / log 0.8) = 4 on hard ones (the 2nd is correct): 2.5 of 8 samples.
    assert ratio.ratio == pytest.approx(2.5 / 8)
    assert ratio.ratio_ci is not None and ratio.matched_fraction > 0.9
    gap = next(g for g in report.oracle if g.policy == "bon8-majority")
    assert gap.ratio is not None and gap.ratio > 1.5  # fixed N wastes samples on easy ones
    parity = next(
        m
        for m in report.parity
        if (m.baseline, m.family, m.metric) == ("bon8-majority", "ias[est]", "coverage")
    )
    assert parity.policy == "ias[est]@0.5" and parity.ratio == pytest.approx(2.5 / 8)
    assert parity.difference == 0.0 and parity.difference_ci is not None
    bins = {b.bin: b for b in by_name["ias[est]@0.99"].bins}
    # C = 0.99: ceil(log 0.01 / log 0.05) = 2 samples on easy, the cap (8) on hard ones.
    assert bins["p<=1.00"].mean_samples == 2.0 and bins["p<=0.50"].mean_samples == 8.0


def test_parity_is_the_cheapest_setting_not_significantly_below_on_paired_replicates() -> None:
    """Settings are judged on the paired difference: shared questions cancel out. A cheap
    setting that passes below one that fails (luck) does not count."""
    names = ("base", "lucky", "cheap", "mid", "dear")
    policies = [
        Policy(name=name, family="bon" if name == "base" else "fam", strategy=BestOfN(n=1),
               max_samples=1)
        for name in names
    ]  # fmt: skip
    questions = 200
    run = Outcomes(policies, [0.5] * questions, replicates=300, pool_size=1)
    base = np.arange(questions) % 2 == 0  # 100 of 200 right
    cheap, mid = base.copy(), base.copy()
    cheap[:80] = False  # loses 40 of the baseline's wins: significantly below
    mid[:4] = False  # loses 2: within noise
    for r in range(run.replicates + 1):
        settings = ((base, 100), (base, 5), (cheap, 10), (mid, 30), (base, 90))
        for p, (correct, tokens) in enumerate(settings):
            run.correct[r, p] = correct
            run.tokens[r, p] = tokens
    run.resample_questions(np.random.default_rng(0))
    report = summarize(run, source="synthetic", baselines=["base"], families=["fam"])
    match = next(m for m in report.parity if m.metric == "accuracy")
    assert match.policy == "mid" and match.ratio == pytest.approx(0.3)
    assert match.difference == pytest.approx(-0.01)  # lower, yet within noise
    assert match.difference_ci is not None and match.difference_ci.high >= 0.0
    assert "| base | fam | mid | -0.010" in report_markdown(report)
    run.question_index = run.question_index[:1]  # no bootstrap replicates: nothing to test on
    for name in ("samples", "tokens", "correct", "covered", "latency"):
        setattr(run, name, getattr(run, name)[:1])
    assert summarize(run, source="synthetic").parity == []


def test_paired_differences_compare_two_policies_on_the_same_questions() -> None:
    policies = [
        Policy(name=name, family=name, strategy=BestOfN(n=1), max_samples=1)
        for name in ("calibrated", "raw")
    ]
    questions = 200
    run = Outcomes(policies, [0.5] * questions, replicates=300, pool_size=1)
    raw = np.arange(questions) % 2 == 0  # 100 right
    calibrated = raw.copy()
    calibrated[1:60:2] = True  # also gets 30 of raw's misses: clearly better
    run.correct[:, 0], run.correct[:, 1] = calibrated, raw
    run.tokens[:, 0], run.tokens[:, 1] = 45, 50
    run.resample_questions(np.random.default_rng(0))
    report = summarize(run, source="synthetic", pairs=[("calibrated", "raw")])
    accuracy = next(d for d in report.differences if d.metric == "accuracy")
    assert (accuracy.first, accuracy.second) == ("calibrated", "raw")
    assert accuracy.difference == pytest.approx(0.15)
    assert accuracy.difference_ci is not None and accuracy.difference_ci.low > 0.0
    assert accuracy.cost_ratio == pytest.approx(0.9)
    assert "| calibrated | raw | accuracy | +0.150" in report_markdown(report)
    with pytest.raises(ConfigurationError, match=r"cannot compare \['judge'\]"):
        summarize(run, source="synthetic", pairs=[("calibrated", "judge")])


class _Exploding(BestOfN):
    """Raises on one question, as a buggy user strategy might."""

    def plan(self, state):  # type: ignore[no-untyped-def]
        if state.question == "question bad":
            raise RuntimeError("boom")
        return (yield from super().plan(state))


def test_a_strategy_failing_on_one_question_loses_nothing_else() -> None:
    pools = prepare_pools([_pool("good", [True, False]), _pool("bad", [True, True])])
    policies = [
        Policy(name="explodes", family="x", strategy=_Exploding(n=2), max_samples=2),
        Policy(name="fine", family="f", strategy=BestOfN(n=2), max_samples=2),
    ]
    out = replay(pools, policies, replicates=1)
    assert out.samples[0].tolist() == [[2, 0], [2, 2]]
    assert out.failures and "explodes on bad: RuntimeError: boom" in out.failures[0]
    report = summarize(out, source="t")
    assert any("count as wrong" in note for note in report.notes)


def test_unservable_policies_are_refused_up_front() -> None:
    pools = prepare_pools([_pool("a", [True, False])])
    policies = [
        Policy(name="b4", family="b", strategy=BestOfN(n=4), max_samples=4),
        Policy(name="i", family="i", strategy=AdaptiveBestOfN(), estimator="judge", max_samples=2),
    ]
    with pytest.raises(
        ConfigurationError, match=r"may draw 4 samples.*budgets on question estimates from 'judge'"
    ):
        replay(pools, policies, replicates=0)


def test_step_level_search_is_refused_with_a_clear_error() -> None:
    pools = prepare_pools([_pool("a", [True, False])])
    policy = Policy(name="beam", family="beam", strategy=BeamSearch(), max_samples=2)
    with pytest.raises(ConfigurationError, match=r"step-level search.*whole samples only"):
        replay(pools, [policy], replicates=0)
    with pytest.raises(ConfigurationError, match="step-level search"):
        replay_question(policy, pools[0])

"""The report: oracle fraction, oracle gap of rules that stop on what they drew, wording."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from langchain_adaptive.evaluation import (
    Policy,
    QuestionPool,
    RecordedSample,
    prepare_pools,
    replay,
    standard_policies,
    summarize,
)
from langchain_adaptive.evaluation.replay import oracle_allocation
from langchain_adaptive.evaluation.report import report_markdown
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import Decision, Draw, Plan, RunState, Strategy


def _pool(qid: str, grades: list[bool], estimate: float, tokens: int = 10) -> QuestionPool:
    return QuestionPool(
        id=qid,
        question=f"question {qid}",
        gold="1",
        question_estimates={"est": SuccessEstimate.point(estimate)},
        samples=[
            RecordedSample(
                text=f"s{i}", answer="1" if ok else str(10 + i), correct=ok, output_tokens=tokens
            )
            for i, ok in enumerate(grades)
        ],
    )


def _easy_and_hopeless(n: int = 10) -> list[QuestionPool]:
    """Half the questions always right (10 tokens a sample), half never (100 tokens)."""
    return [
        _pool(f"e{i}", [True] * 8, 0.99, tokens=10) if i % 2 == 0 else
        _pool(f"h{i}", [False] * 8, 0.01, tokens=100)
        for i in range(n)
    ]  # fmt: skip


def _ratio(report, family: str, cost: str):  # type: ignore[no-untyped-def]
    return next(
        r
        for r in report.ratios
        if r.baseline == "bon8-majority"
        and r.family == family
        and r.metric == "accuracy"
        and r.cost == cost
    )


def test_the_oracle_fraction_is_the_share_of_the_oracles_saving() -> None:
    policies = standard_policies(
        8, estimators=["est"], confidences=(0.5, 0.9), floor_samples=1, oracle=False
    )
    run = replay(prepare_pools(_easy_and_hopeless()), policies, replicates=20, seed=1)
    report = summarize(run, source="t", costs=("samples", "tokens"))
    # BoN-8 spends 8 samples; the oracle reaches its 0.5 with 1 a question; IAS spends 1 on
    # easy and the cap on hopeless questions (4.5), the floored rule 1 on both
    ias = _ratio(report, "ias[est]", "samples")
    assert (ias.baseline_cost, ias.oracle_cost, ias.family_cost) == (8.0, 1.0, 4.5)
    assert ias.oracle_fraction == pytest.approx((8 - 4.5) / (8 - 1))
    assert ias.oracle_fraction_ci is not None
    assert ias.oracle_fraction_ci.low <= ias.oracle_fraction <= ias.oracle_fraction_ci.high
    floored = _ratio(report, "ias-floor1[est]", "samples")
    assert floored.oracle_fraction == pytest.approx(1.0)
    # in tokens the oracle's samples cost each question's own tokens per sample
    ias_tokens = _ratio(report, "ias[est]", "tokens")
    assert ias_tokens.oracle_cost == pytest.approx((10 + 100) / 2)
    assert ias_tokens.oracle_fraction == pytest.approx((440 - 405) / (440 - 55))
    markdown = report_markdown(report)
    assert "oracle fraction [95% CI]" in markdown
    assert f"| {ias.oracle_fraction:.2f} [" in markdown


def test_vote_rules_are_swept_families_with_match_and_parity_rows() -> None:
    rng = np.random.default_rng(0)
    pools = [_pool(f"q{i}", list(rng.uniform(size=16) < 0.6), 0.5) for i in range(12)]
    run = replay(prepare_pools(pools), standard_policies(16, oracle=False), replicates=5)
    report = summarize(run, source="t")
    for family in ("adaptive-consistency", "early-stopping sc"):
        members = [s for s in report.policies if s.family == family]
        assert len(members) == 6
        assert any(r.family == family and r.oracle_fraction is not None for r in report.ratios)
        assert any(m.family == family for m in report.parity)


class _StopAtFirstRight(Strategy):
    """Draws one at a time until a drawn sample is right: its count says how lucky it was."""

    name: ClassVar[str] = "stop_at_first_right"

    def plan(self, state: RunState) -> Plan:
        while state.allowance(1) and not any(c.correct for c in state.candidates):
            yield Draw(1)
        return Decision(stop_reason="consensus", decided_samples=len(state.candidates))


def test_the_oracle_gap_uses_what_a_stopping_rule_realised() -> None:
    pools = [_pool(f"q{i}", [True, False] * 4, 0.5) for i in range(6)]
    policy = Policy(name="lucky", family="lucky", strategy=_StopAtFirstRight(), max_samples=8)
    run = replay(prepare_pools(pools), [policy], replicates=30, seed=2)
    [gap] = summarize(run, source="t").oracle
    # it always ends on a right sample: coverage 1, not 1 - 0.5^n of the n it happened to draw
    assert gap.expected_coverage == 1.0
    assert gap.mean_samples == pytest.approx(run.samples.mean())
    # an oracle that knows p = 4/8 but not the order needs 5 draws to be sure
    assert gap.oracle_mean_samples == 5.0


def test_the_oracle_draws_without_replacement_in_replay() -> None:
    rates = [0.5, 0.0]
    assert oracle_allocation(rates, 0.5, cap=8, recorded=[8, 8]).tolist() == [5, 1]
    assert oracle_allocation(rates, 0.5, cap=8) is None  # with replacement 1 is never reached
    assert oracle_allocation(rates, 0.49, cap=8).tolist() == [6, 1]  # 1 - 0.5^6 >= 0.98


def test_a_report_without_replicates_does_not_claim_zero_percent() -> None:
    policies = standard_policies(8, estimators=["est"], confidences=(0.5, 0.9), oracle=False)
    run = replay(prepare_pools(_easy_and_hopeless(4)), policies, replicates=0)
    report = summarize(run, source="t")
    assert all(r.matched_fraction is None for r in report.ratios)
    markdown = report_markdown(report)
    assert "0%" not in markdown
    assert "reached in (needs bootstrap replicates)" in markdown

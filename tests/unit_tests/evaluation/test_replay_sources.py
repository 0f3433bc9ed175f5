"""Replay of pools whose scorer cannot score the question alone, and whose scores are calibrated.

Imported reward-model or logprob pools store one score per sample (a
one-element step list, raw score any real number) and no question estimate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from langchain_adaptive.calibration import IdentityCalibrator, IsotonicCalibrator
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation import (
    Policy,
    QuestionPool,
    RecordedSample,
    add_calibrated_estimates,
    prepare_pools,
    replay,
    standard_policies,
)
from langchain_adaptive.evaluation.replay import load_orders
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import AdaptiveBestOfN, BestOfN, SequentialAdaptiveBestOfN


def _sample(i: int, ok: bool, scores: dict[str, float]) -> RecordedSample:
    return RecordedSample(
        text=f"s{i}",
        answer="1" if ok else str(10 + i),
        correct=ok,
        output_tokens=10 + i,
        step_estimates={
            name: [SuccessEstimate.point(1.0 / (1.0 + math.exp(-raw)), raw_score=raw)]
            for name, raw in scores.items()
        },
    )


def _imported(
    qid: str,
    grades: list[bool],
    *,
    logit: float = 3.0,
    questions: dict[str, SuccessEstimate] | None = None,
    extra: dict[str, float] | None = None,
) -> QuestionPool:
    """A reward-scored pool: correct samples score +logit, wrong ones -logit, raw."""
    samples = [
        _sample(i, ok, {"rm": logit if ok else -logit, **(extra or {})})
        for i, ok in enumerate(grades)
    ]
    return QuestionPool(
        id=qid,
        question=f"question {qid}",
        gold="1",
        question_estimates=questions or {},
        samples=samples,
    )


def _pools(n: int = 6) -> list[QuestionPool]:
    rng = np.random.default_rng(0)
    return [_imported(f"q{i}", list(rng.uniform(size=8) < 0.4)) for i in range(n)]


def test_a_scorer_without_question_estimates_serves_every_policy_that_needs_none() -> None:
    prepared = prepare_pools(_pools())
    policies = standard_policies(8, scorer="rm", confidences=(0.9,))
    names = [p.name for p in policies]
    assert "bon1-prm[rm]" in names and "bon8-weighted[rm]" in names
    run = replay(prepared, policies, replicates=2)  # used to fail: "needs estimator 'rm'"
    assert not run.failures
    prm8 = names.index("bon8-prm[rm]")
    # the reward separates right from wrong: argmax is right wherever a sample is
    assert (run.correct[:, prm8] == run.covered[:, prm8]).all()


def test_budgeting_on_a_scorer_without_question_estimates_says_why() -> None:
    prepared = prepare_pools(_pools())
    ias = Policy(
        name="ias", family="ias", strategy=AdaptiveBestOfN(), estimator="rm", max_samples=8
    )
    with pytest.raises(ConfigurationError, match=r"budgets on question estimates from 'rm'.*"
                       r"scores samples, not the question alone"):  # fmt: skip
        replay(prepared, [ias], replicates=0)
    unscored = Policy(
        name="w", family="w", strategy=BestOfN(n=2, selection="prm"), scorer="judge", max_samples=2
    )
    with pytest.raises(ConfigurationError, match="reads step scores from 'judge'"):
        replay(prepared, [unscored], replicates=0)


def test_sequential_ias_stops_on_its_own_estimators_step_scores() -> None:
    alone = {"a": SuccessEstimate.point(0.5), "b": SuccessEstimate.point(0.5)}
    pools = [
        _imported(f"q{i}", [False, True] * 4, questions=alone, extra={"a": 5.0, "b": -5.0})
        for i in range(4)
    ]
    policies = standard_policies(
        8, estimators=["a", "b"], scorer="a", confidences=(0.9,), round_size=1, oracle=False
    )
    names = [p.name for p in policies]
    run = replay(prepared := prepare_pools(pools), policies, replicates=0)
    assert prepared and not run.failures
    # a trusts every sample (0.99): one draw reaches C = 0.9; b trusts none (0.007): the cap
    assert (run.samples[0, names.index("sequential-ias[a]@0.9")] == 1).all()
    assert (run.samples[0, names.index("sequential-ias[b]@0.9")] == 8).all()


def test_two_calibrations_of_one_score_stop_differently() -> None:
    placeholder = {"conf": SuccessEstimate.point(1.0)}  # what a token-confidence PRM records
    rng = np.random.default_rng(1)
    pools = []
    for i in range(12):
        grades = list(rng.uniform(size=8) < 0.5)
        samples = [
            _sample(j, ok, {"conf": float(rng.normal(1.0 if ok else -1.0))})
            for j, ok in enumerate(grades)
        ]
        pools.append(
            QuestionPool(
                id=f"q{i}", question=f"q{i}", question_estimates=placeholder, samples=samples
            )
        )
    raw = [s.step_estimates["conf"][0].raw_score for p in pools for s in p.samples]
    correct = [float(s.correct) for p in pools for s in p.samples]
    sharp = IsotonicCalibrator().fit(raw, None, correct, [1.0] * len(raw))
    blunt = IsotonicCalibrator(interval_trials=2).fit(raw, None, correct, [1.0] * len(raw))
    pools = add_calibrated_estimates(pools, "conf", sharp, "sharp")
    pools = add_calibrated_estimates(pools, "conf", blunt, "blunt")
    policies = standard_policies(
        8, estimators=["sharp", "blunt"], scorer="conf", confidences=(0.9,), oracle=False
    )
    names = [p.name for p in policies]
    run = replay(prepare_pools(pools), policies, replicates=3)
    sharp_samples = run.samples[:, names.index("sequential-ias[sharp]@0.9")]
    blunt_samples = run.samples[:, names.index("sequential-ias[blunt]@0.9")]
    # the wide bounds of 2 trials trust a sample less, so the blunt rule draws more
    assert blunt_samples.sum() > sharp_samples.sum()


def test_calibrating_a_score_with_no_question_estimate_calibrates_the_samples_only() -> None:
    pools = _pools()
    raw = [s.step_estimates["rm"][0].raw_score for p in pools for s in p.samples]
    correct = [float(s.correct) for p in pools for s in p.samples]
    isotonic = IsotonicCalibrator().fit(raw, None, correct, [1.0] * len(raw))
    calibrated = add_calibrated_estimates(pools, "rm", isotonic, "rm-iso")
    for pool in calibrated:
        assert "rm-iso" not in pool.question_estimates
        for sample in pool.samples:
            [estimate] = sample.step_estimates["rm-iso"]
            assert estimate.raw_score == sample.step_estimates["rm"][0].raw_score
            assert estimate.median == pytest.approx(1.0 if sample.correct else 0.0)
    with pytest.raises(ConfigurationError, match="no estimates from 'prm' to calibrate"):
        add_calibrated_estimates(pools, "prm", isotonic, "x")


def test_a_placeholder_question_estimate_maps_to_the_base_rate() -> None:
    # the samples the calibrator saw: confident ones (raw 1.0) are right 90% of the time
    rng = np.random.default_rng(2)
    raw = np.r_[np.full(100, 1.0), rng.uniform(0.0, 0.6, 300)]
    correct = np.r_[rng.uniform(size=100) < 0.9, rng.uniform(size=300) < 0.2].astype(float)
    isotonic = IsotonicCalibrator().fit(raw, None, correct, np.ones(400))
    assert isotonic.predict([1.0])[0].lower > 0.8  # the top block
    placeholder = {"conf": SuccessEstimate.point(1.0)}
    samples = [
        RecordedSample(
            text=f"s{j}",
            answer="1",
            correct=True,
            step_estimates={"conf": [SuccessEstimate.point(0.2 + 0.1 * j)]},
        )
        for j in range(4)
    ]
    pools = [
        QuestionPool(id=f"q{i}", question=f"q{i}", question_estimates=placeholder, samples=samples)
        for i in range(3)
    ]
    calibrated = add_calibrated_estimates(pools, "conf", isotonic, "conf-iso")
    for pool in calibrated:
        estimate = pool.question_estimates["conf-iso"]
        assert estimate.lower == pytest.approx(correct.mean())  # was the top block, 0.85
        assert estimate.median == pytest.approx(correct.mean())
    # a real question estimate (different per question) is calibrated as a score
    real = [
        pool.model_copy(update={"question_estimates": {"conf": SuccessEstimate.point(p)}})
        for pool, p in zip(pools, (1.0, 0.3, 0.5), strict=True)
    ]
    first = add_calibrated_estimates(real, "conf", isotonic, "conf-iso")[0]
    assert first.question_estimates["conf-iso"].lower > 0.8
    # the identity keeps a placeholder as it is
    kept = add_calibrated_estimates(pools, "conf", IdentityCalibrator(), "conf-id")[0]
    assert kept.question_estimates["conf-id"].lower == 1.0


def test_fixed_orders_replay_exactly_those_draws(tmp_path: Path) -> None:
    pools = prepare_pools(_pools(3))
    policies = [Policy(name="b1", family="b", strategy=BestOfN(n=1), max_samples=1)]
    orders = {p.pool.id: [list(range(8)), list(range(7, -1, -1))] for p in pools}
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(orders))
    run = replay(pools, policies, replicates=1, orders=load_orders(path))
    assert run.correct[0, 0].tolist() == [p.correct[0] for p in pools]
    assert run.correct[1, 0].tolist() == [p.correct[7] for p in pools]
    assert run.tokens[1, 0].tolist() == [17, 17, 17]  # sample 7 has 17 tokens
    shared = [list(range(8)), list(range(7, -1, -1))]
    again = replay(pools, policies, replicates=1, orders=shared)  # one list for every question
    assert np.array_equal(again.correct, run.correct)


@pytest.mark.parametrize(
    ("orders", "replicates", "message"),
    [
        ({"q0": [[0, 1, 2]]}, 0, r"sample order 0 of question 'q0' is not a permutation of 0\.\.7"),
        ([[0, 0, 1, 2, 3, 4, 5, 6]], 0, "not a permutation"),
        ({"q0": [list(range(8))]}, 0, "none for question 'q1'"),
        ([list(range(8))], 1, r"has 1 sample order\(s\) but the run needs 2"),
    ],
)
def test_bad_orders_are_refused_naming_the_question(
    orders: object, replicates: int, message: str
) -> None:
    pools = prepare_pools(_pools(2))
    policies = [Policy(name="b1", family="b", strategy=BestOfN(n=1), max_samples=1)]
    with pytest.raises(ConfigurationError, match=message):
        replay(pools, policies, replicates=replicates, orders=orders)  # type: ignore[arg-type]


def test_an_orders_file_that_is_not_orders_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text('{"q0": 3}')
    with pytest.raises(ConfigurationError, match=r"orders\.json: sample orders must be"):
        load_orders(path)
    path.write_text("not json")
    with pytest.raises(ConfigurationError, match="cannot read sample orders"):
        load_orders(path)


def test_several_scorers_each_get_their_families() -> None:
    names = {p.name for p in standard_policies(4, scorer=["rm", "rm-iso"], oracle=False)}
    assert {
        "bon4-prm[rm]",
        "bon4-weighted[rm]",
        "bon4-prm[rm-iso]",
        "bon4-weighted[rm-iso]",
    } <= names
    with pytest.raises(ConfigurationError, match="distinct"):
        standard_policies(4, scorer=["rm", "rm"])


def test_sequential_replays_on_real_pools_with_a_sequential_strategy() -> None:
    # a scorer-only pool with a base-rate prior recorded as the question estimate
    prior = {"rm": SuccessEstimate.point(0.4)}
    pools = prepare_pools(
        [_imported(f"q{i}", [False, True] * 4, questions=prior) for i in range(3)]
    )
    policy = Policy(
        name="seq",
        family="seq",
        strategy=SequentialAdaptiveBestOfN(round_size=1),
        estimator="rm",
        max_samples=8,
        target_confidence=0.9,
    )
    run = replay(pools, [policy], replicates=0)
    # wrong first (0.047), right second (0.95): two draws reach 0.9
    assert run.samples[0, 0].tolist() == [2, 2, 2] and run.correct[0, 0].all()

"""Batch allocation: greedy is optimal, the total is a hard limit, live and replay agree."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.errors import ConfigurationError, EmptyQuestionError
from langchain_adaptive.evaluation import (
    QuestionPool,
    RecordedSample,
    batch_allocation_policy,
    batch_budget_policies,
    batch_policies,
    ias_total_samples,
    prepare_pools,
    replay,
    standard_policies,
    summarize,
)
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies._allocation import (
    FixedAllocation,
    allocate_budget,
    expected_coverage,
)
from tests.tracing import RunCollector, walk
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
SERIAL = {"max_concurrency": 1}


def _brute_force(rates: list[float], total: int, cap: int) -> float:
    """The best expected coverage over every allocation with a floor of 1 and the cap."""
    best = -1.0
    for counts in itertools.product(range(1, cap + 1), repeat=len(rates)):
        if sum(counts) <= total:
            best = max(best, expected_coverage(rates, counts))
    return best


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
    extra=st.integers(0, 10),
    cap=st.integers(1, 5),
)
def test_greedy_matches_brute_force(rates: list[float], extra: int, cap: int) -> None:
    total = len(rates) + extra
    counts = allocate_budget(rates, total, cap)
    assert sum(counts) == min(total, cap * len(rates))  # the budget, spent exactly
    assert all(1 <= c <= cap for c in counts)
    assert expected_coverage(rates, counts) == pytest.approx(
        _brute_force(rates, total, cap), abs=1e-9
    )


def test_hard_questions_get_the_spare_samples_easy_ones_do_not_need() -> None:
    counts = allocate_budget([0.99, 0.5, 0.2], total_samples=9, max_per_question=8)
    assert counts[0] == 1 and counts[2] > counts[1] > 1
    assert allocate_budget([0.3, 0.3], total_samples=5, max_per_question=8) == [3, 2]  # ties: first
    assert allocate_budget([], total_samples=0, max_per_question=3) == []


@pytest.mark.parametrize(
    ("estimates", "total", "cap", "floor", "match"),
    [
        ([0.5, 0.5], 1, 4, 1, "at least 2"),
        ([0.5], 3, 2, 3, "min_per_question"),
        ([float("nan")], 3, 2, 1, "finite"),
    ],
)
def test_bad_allocations_are_configuration_errors(
    estimates: list[float], total: int, cap: int, floor: int, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        allocate_budget(estimates, total, cap, min_per_question=floor)


# -- the runnable ------------------------------------------------------------------

QUESTIONS = {"What is 7 + 8?": 0.9, "What is 17 * 23?": 0.3, "What is 2 ** 20?": 0.05}


def _runnable(**fields: object) -> AdaptiveReasoningRunnable:
    defaults: dict[str, object] = {
        "model": ScriptedChatModel(responses=[RIGHT]),
        "prm": ScriptedPRM(question_p=dict(QUESTIONS)),
        "max_samples": 6,
    }
    return AdaptiveReasoningRunnable(**{**defaults, **fields})  # type: ignore[arg-type]


def test_batch_with_budget_draws_each_question_its_share() -> None:
    runnable = _runnable()
    results = runnable.batch_with_budget(list(QUESTIONS), total_samples=8, config=SERIAL)
    expected = allocate_budget(list(QUESTIONS.values()), 8, 6)
    used = [r.budget.samples_used for r in results]  # type: ignore[union-attr]
    assert used == expected and sum(used) == 8
    for result, p in zip(results, QUESTIONS.values(), strict=True):
        assert not isinstance(result, Exception)
        assert result.strategy == "fixed_allocation"
        assert result.stop_reason == "fixed_budget"
        assert result.question_estimate == SuccessEstimate.point(p)
        assert result.confidence == pytest.approx(1 - (1 - p) ** result.budget.samples_used)
        assert result.answer == "15"
    # One question estimate each, then one scoring call per question (weighted vote).
    assert len(runnable.prm.calls) == 6  # type: ignore[union-attr]


def test_every_estimate_and_answer_is_a_traced_run() -> None:
    tracer = RunCollector()
    config = {"callbacks": [tracer], "tags": ["batch"], "max_concurrency": 1}
    results = _runnable().batch_with_budget(list(QUESTIONS), total_samples=8, config=config)
    roots = [r for r in tracer.runs if r.parent_run_id is None]
    chains = [r for r in roots if r.name == "AdaptiveReasoningRunnable"]
    assert sum(r.run_type == "prm" for r in roots) == 3  # the estimates, before allocating
    assert len(chains) == 3 and all("batch" in r.tags for r in roots)
    drawn = sorted(sum(c.run_type == "llm" for c in walk(chain)) for chain in chains)
    assert drawn == sorted(r.budget.samples_used for r in results)  # type: ignore[union-attr]


async def test_abatch_with_budget_allocates_the_same() -> None:
    sync = _runnable().batch_with_budget(list(QUESTIONS), total_samples=7)
    asynchronous = await _runnable().abatch_with_budget(list(QUESTIONS), total_samples=7)
    assert [r.budget.samples_used for r in sync] == [  # type: ignore[union-attr]
        r.budget.samples_used  # type: ignore[union-attr]
        for r in asynchronous
    ]


async def test_batch_and_abatch_take_a_total_budget() -> None:
    """``batch(..., total_samples=N)`` is the budgeted batch; without it, per-question IAS."""
    expected = allocate_budget(list(QUESTIONS.values()), 7, 6)
    sync = _runnable().batch(list(QUESTIONS), total_samples=7)
    asynchronous = await _runnable().abatch(list(QUESTIONS), total_samples=7)
    for results in (sync, asynchronous):
        assert [r.budget.samples_used for r in results] == expected
        assert {r.strategy for r in results} == {"fixed_allocation"}
    per_question = _runnable().batch(list(QUESTIONS))
    assert {r.strategy for r in per_question} != {"fixed_allocation"}
    with pytest.raises(ConfigurationError, match="less than one sample"):
        await _runnable().abatch(list(QUESTIONS), total_samples=2)
    with pytest.raises(ConfigurationError):
        _runnable().batch(list(QUESTIONS), total_samples=7, temperature=0.1)


def test_the_budget_is_checked_before_any_call() -> None:
    runnable = _runnable()
    with pytest.raises(ConfigurationError, match="less than one sample"):
        runnable.batch_with_budget(list(QUESTIONS), total_samples=2)
    assert runnable.prm.calls == [] and runnable.model.calls == []  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="needs a PRM"):
        _runnable(prm=None, strategy="majority_vote").batch_with_budget(["q"], total_samples=2)


def test_bad_inputs_come_back_in_place_and_get_no_samples() -> None:
    runnable = _runnable()
    inputs = ["What is 7 + 8?", "   ", "What is 17 * 23?"]
    with pytest.raises(EmptyQuestionError):
        runnable.batch_with_budget(inputs, total_samples=4)
    results = runnable.batch_with_budget(inputs, total_samples=4, return_exceptions=True)
    assert isinstance(results[1], EmptyQuestionError)
    assert sum(r.budget.samples_used for r in results if not isinstance(r, Exception)) == 4


def test_the_token_cap_still_binds_within_a_share() -> None:
    runnable = _runnable(max_tokens_per_sample=16, max_total_tokens=16)
    results = runnable.batch_with_budget(["What is 2 ** 20?"], total_samples=5)
    [result] = results
    assert not isinstance(result, Exception)
    assert result.budget.samples_used == 1 and result.stop_reason == "token_budget"


def test_fixed_allocation_refuses_an_unallocated_question() -> None:
    runnable = _runnable(strategy=FixedAllocation(samples={"other": 2}))
    with pytest.raises(ConfigurationError, match="no samples were allocated"):
        runnable.invoke("What is 7 + 8?")


# -- the harness -------------------------------------------------------------------


def _pool(qid: str, p_true: float, p_estimate: float, size: int = 8) -> QuestionPool:
    right = round(p_true * size)
    samples = [
        RecordedSample(
            text=f"s{i}", answer="1" if i < right else str(10 + i), correct=i < right,
            output_tokens=10,
        )
        for i in range(size)
    ]  # fmt: skip
    return QuestionPool(
        id=qid,
        question=f"question {qid}",
        gold="1",
        question_estimates={"est": SuccessEstimate.point(p_estimate)},
        samples=samples,
    )


def test_batch_allocation_replays_at_ias_total_compute() -> None:
    pools = [_pool("a", 1.0, 0.95), _pool("b", 0.25, 0.3), _pool("c", 0.125, 0.1)]
    policies = [
        *standard_policies(8, estimators=["est"], confidences=(0.9,), oracle=False),
        *batch_policies(pools, ["est", "oracle"], max_samples=8, confidences=(0.9,)),
    ]
    names = [p.name for p in policies]
    assert "batch[oracle]@0.9" not in names
    run = replay(prepare_pools(pools), policies, replicates=2)
    assert not run.failures
    ias, batch = names.index("ias[est]@0.9"), names.index("batch[est]@0.9")
    total = ias_total_samples(pools, "est", 0.9, max_samples=8)
    assert run.samples[0, ias].sum() == total == run.samples[0, batch].sum()
    expected = allocate_budget([0.95, 0.3, 0.1], total, 8)
    assert run.samples[0, batch].tolist() == expected
    report = summarize(run, source="test")
    assert {"ias[est]", "batch[est]"} <= {s.family for s in report.policies}


def test_batch_allocation_policy_checks_its_pools() -> None:
    twins = [_pool("a", 1.0, 0.5), _pool("a", 1.0, 0.5).model_copy(update={"id": "b"})]
    with pytest.raises(ConfigurationError, match="distinct question texts"):
        batch_allocation_policy(twins, "est", 4, max_samples=8)
    with pytest.raises(ConfigurationError, match="needs estimator 'probe'"):
        batch_allocation_policy([_pool("a", 1.0, 0.5)], "probe", 4, max_samples=8)


def test_batch_budget_policies_spend_the_named_mean_budget() -> None:
    pools = [_pool("a", 1.0, 0.95), _pool("b", 0.25, 0.3), _pool("c", 0.125, 0.1)]
    policies = batch_budget_policies(pools, ["est", "oracle"], [1, 2.5], max_samples=8)
    assert [p.name for p in policies] == ["batch[est]@1s", "batch[est]@2.5s"]
    assert {p.family for p in policies} == {"batch[est]"}
    run = replay(prepare_pools(pools), policies, replicates=1)
    assert not run.failures
    assert run.samples[0, 0].tolist() == [1, 1, 1]  # at least one sample a question
    assert run.samples[0, 1].sum() == round(2.5 * 3)
    assert run.samples[0, 1].tolist() == allocate_budget([0.95, 0.3, 0.1], 8, 8)

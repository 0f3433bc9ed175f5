"""Compute-optimal choice: bins and budgets from a replay, the policy file, strategy and CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.cli import main
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation import (
    PoolHeader,
    QuestionPool,
    RecordedSample,
    batch_budget_policies,
    prepare_pools,
    replay,
    standard_policies,
    write_pools,
)
from langchain_adaptive.evaluation.compute_optimal_fit import choose_policy
from langchain_adaptive.evaluation.pools import answer_equivalence
from langchain_adaptive.results import SuccessEstimate
from langchain_adaptive.strategies import build_strategy
from langchain_adaptive.strategies._compute_optimal import (
    ComputeOptimalPolicy,
    ComputeOptimalStrategy,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

HARD = (0.10, 0.15, 0.20, 0.25, 0.30)
EASY = (0.70, 0.75, 0.80, 0.85, 0.90)


def _pool(index: int, estimate: float, *, easy: bool) -> QuestionPool:
    """Easy: every sample right. Hard: the first sample wrong, the next two right, rest wrong."""
    right = set(range(8)) if easy else {1, 2}
    samples = [
        RecordedSample(
            text=f"s{i}", answer="1" if i in right else str(10 + i), correct=i in right,
            output_tokens=5,
        )
        for i in range(8)
    ]  # fmt: skip
    return QuestionPool(
        id=f"q{index}",
        question=f"question {index}",
        gold="1",
        question_estimates={"est": SuccessEstimate.point(estimate)},
        samples=samples,
    )


POOLS = [_pool(i, p, easy=False) for i, p in enumerate(HARD)] + [
    _pool(5 + i, p, easy=True) for i, p in enumerate(EASY)
]


@pytest.fixture(scope="module")
def policy() -> ComputeOptimalPolicy:
    policies = standard_policies(8, estimators=["est"], confidences=(0.5, 0.9))
    run = replay(prepare_pools(POOLS, answer_equivalence("exact")), policies, replicates=0)
    return choose_policy(run, POOLS, estimator="est", budgets=[4, 1])


def test_five_quantile_bins_and_ascending_budgets(policy: ComputeOptimalPolicy) -> None:
    assert policy.bin_edges == [0.15, 0.25, 0.7, 0.8]  # "lower" quantiles of the ten
    assert [level.budget for level in policy.levels] == [1.0, 4.0]
    assert [policy.bin_of(p) for p in (0.0, 0.1, 0.15, 0.5, 0.72, 0.8)] == [0, 0, 1, 2, 3, 4]


def test_each_bin_gets_its_best_policy_within_the_budget(policy: ComputeOptimalPolicy) -> None:
    low, high = policy.level(1), policy.level(4)
    # Easy questions: one sample is already always right, so nothing costlier is chosen.
    assert [c.policy for c in high.choices[3:]] == ["bon1-majority", "bon1-majority"]
    # Hard questions: one sample is always wrong; four samples outvote the first.
    assert low.choices[0].policy == "bon1-majority" and low.choices[0].accuracy == 0.0
    assert high.choices[0].accuracy == 1.0 and high.choices[0].mean_samples <= 4
    for level in policy.levels:
        for choice in level.choices:
            assert choice.mean_samples <= level.budget
            build_strategy(choice.strategy, **choice.settings)  # every choice runs live


def test_policy_file_round_trip_and_lookup(policy: ComputeOptimalPolicy, tmp_path: Path) -> None:
    path = policy.save(tmp_path / "policy.json")
    loaded = ComputeOptimalPolicy.load(path)
    assert loaded == policy
    assert loaded.choice(0.9, budget=3).policy == policy.levels[0].choices[4].policy
    assert loaded.level(None).budget == 4.0 and loaded.level(100).budget == 4.0
    with pytest.raises(ConfigurationError, match="below the smallest level"):
        loaded.level(0.5)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ConfigurationError, match="not a compute-optimal policy"):
        ComputeOptimalPolicy.load(tmp_path / "bad.json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        ComputeOptimalPolicy.load(tmp_path / "missing.json")


def test_choosing_refuses_what_it_cannot_choose_from() -> None:
    policies = standard_policies(8, estimators=["est"], confidences=(0.9,))
    run = replay(prepare_pools(POOLS), policies, replicates=0)
    with pytest.raises(ConfigurationError, match="budgets must be positive"):
        choose_policy(run, POOLS, estimator="est", budgets=[])
    with pytest.raises(ConfigurationError, match="no estimate from 'probe'"):
        choose_policy(run, POOLS, estimator="probe", budgets=[2])
    with pytest.raises(ConfigurationError, match="no replayed policy can be chosen"):
        choose_policy(run, POOLS, estimator="est", budgets=[2], selection="prm")


def test_a_batch_allocation_is_never_chosen() -> None:
    # registered (fixed_allocation), but it needs the whole batch: not a per-question choice
    policies = standard_policies(8, estimators=["est"], confidences=(0.9,), sizes=(1,))
    policies += batch_budget_policies(POOLS, ["est"], [4.0], max_samples=8)
    run = replay(prepare_pools(POOLS, answer_equivalence("exact")), policies, replicates=0)
    assert "fixed_allocation" in {policy.strategy.name for policy in run.policies}
    chosen = choose_policy(run, POOLS, estimator="est", budgets=[8])
    assert all(c.strategy != "fixed_allocation" for c in chosen.levels[0].choices)


def test_the_runtime_never_imports_the_harness() -> None:
    code = (
        "import sys, langchain_adaptive.strategies._compute_optimal, langchain_adaptive.runnable; "
        "print(sorted(m for m in sys.modules if m.startswith('langchain_adaptive.evaluation')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."


@pytest.mark.parametrize(("p", "budget"), [(0.9, 4), (0.1, 4), (0.1, 1), (0.5, None)])
def test_the_strategy_runs_its_bins_choice(
    policy: ComputeOptimalPolicy, p: float, budget: float | None
) -> None:
    question = "What is 7 + 8?"
    choice = policy.choice(p, budget)

    def runnable(strategy: object, **fields: object) -> AdaptiveReasoningRunnable:
        settings: dict[str, object] = {
            "model": ScriptedChatModel(responses=[WRONG, RIGHT, RIGHT]),
            "prm": ScriptedPRM(question_p={question: p}),
            "strategy": strategy,
            "max_samples": 8,
        }
        return AdaptiveReasoningRunnable(**{**settings, **fields})  # type: ignore[arg-type]

    chosen = runnable(ComputeOptimalStrategy(policy=policy, budget=budget))
    result = chosen.invoke(question)
    direct = runnable(
        build_strategy(choice.strategy, **choice.settings),
        target_confidence=choice.target_confidence,
        max_samples=choice.max_samples,
    ).invoke(question)
    assert result.strategy == "compute_optimal" and result.selection == policy.selection
    assert result.budget.samples_used == direct.budget.samples_used
    assert result.answer == direct.answer
    estimates = [call for call in chosen.prm.calls if call[1] == [[]]]  # type: ignore[union-attr]
    assert len(estimates) == 1  # the delegate reuses the estimate


def test_strategy_checks_selection_and_budget(policy: ComputeOptimalPolicy, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differs from the policy file"):
        ComputeOptimalStrategy(policy=policy, selection="prm")
    with pytest.raises(ValueError, match="below the smallest level"):
        ComputeOptimalStrategy(policy=policy, budget=0.5)
    path = policy.save(tmp_path / "p.json")
    assert ComputeOptimalStrategy.load(path, budget=2).policy == policy
    with pytest.raises(ConfigurationError, match="below the smallest level"):
        ComputeOptimalStrategy.load(path, budget=0.5)


def test_choose_policy_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = write_pools(
        tmp_path / "pools.jsonl",
        PoolHeader(
            model="scripted", prms=["est"], samples_per_question=8, max_tokens_per_sample=16,
            equivalence="exact",
        ),
        POOLS,
    )  # fmt: skip
    out = tmp_path / "policy.json"
    args = ["bench", "choose-policy", str(pools), "--estimator", "est", "--budgets", "1,4"]
    assert main([*args, "--confidences", "0.5,0.9", "--out", str(out)]) == 0
    loaded = ComputeOptimalPolicy.load(out)
    assert loaded.estimator == "est" and len(loaded.levels) == 2
    assert loaded.bin_edges == [0.15, 0.25, 0.7, 0.8]
    assert "bin edges (est at q=0.5)" in capsys.readouterr().out

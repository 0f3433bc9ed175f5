"""The all-families compute-optimal benchmark end to end on the bundled model: a tiny live
run, its resume, a policy fitted from its records by ``bench choose-policy --records``, and
that policy loaded and run by the runnable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.cli import main
from langchain_adaptive.evaluation.datasets import arithmetic_suite
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD
from langchain_adaptive.strategies._compute_optimal import ComputeOptimalStrategy

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLED_HEAD / "probe.json").is_file(), reason="no bundled head"),
]

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "examples" / "benchmarks" / "compute_optimal_all.py"
TINY = ["--questions", "2", "--pool", "2", "--n", "2", "--beams", "1", "--ratios", "1:1",
        "--particles", "2", "--max-steps", "1", "--step-tokens", "8", "--sample-tokens", "8",
        "--few-shot", "1", "--replicates", "20", "--threads", "1", "--budgets", "8,40"]  # fmt: skip


def test_live_records_resume_fit_a_policy_that_loads_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "co.json"
    run = [sys.executable, str(BENCHMARK), *TINY, "--out", str(out)]
    subprocess.run(run, check=True, timeout=900, cwd=BENCHMARK.parent)
    records = out.with_suffix(".records.jsonl")
    lines = records.read_text().splitlines()
    assert len(lines) == 2 * 5  # pool, revise, beam la=0 and la=1, particles; 2 questions
    row = json.loads(lines[0])
    assert row["trace"]["candidates"] and row["question_estimate"]["quantiles"]
    report = json.loads(out.read_text())
    assert report["questions"] == 2 and len(report["compute_optimal"]) == 2
    assert {e["family"] for e in report["summary"].values()} >= {"revise", "lookahead", "IAS"}
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".md").is_file()

    subprocess.run(run, check=True, timeout=900, cwd=BENCHMARK.parent)  # resumes: nothing new
    assert records.read_text().splitlines() == lines

    policy = tmp_path / "policy.json"
    outcomes = out.with_suffix(".outcomes.jsonl")
    args = ["bench", "choose-policy", "--records", str(outcomes), "--estimator", "probe"]
    assert main([*args, "--budgets", "8,40", "--bins", "1", "--out", str(policy)]) == 0
    strategy = ComputeOptimalStrategy.load(policy, budget=40)
    assert strategy.policy.budget_unit == "tokens"
    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    result = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=0, n_threads=1),
        prm=ProbePRM(n_threads=1),
        strategy=strategy,
        max_samples=4,
        max_tokens_per_sample=8,
    ).invoke({"question": problem.question, "gold": problem.gold})
    assert result.strategy == "compute_optimal" and result.budget.generated_tokens > 0

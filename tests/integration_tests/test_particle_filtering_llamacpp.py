"""Particle filtering on the real bundled SmolLM2 with the bundled probe PRM: mechanics only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveCallbackHandler, AdaptiveReasoningRunnable
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.callbacks import BeamsPruned
from langchain_adaptive.evaluation.datasets import arithmetic_suite, worked_examples
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD
from langchain_adaptive.strategies import AdaptiveParticleFiltering, ParticleFiltering

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLED_HEAD / "probe.json").is_file(), reason="no bundled head"),
]

STEP_TOKENS = 24
ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "examples" / "benchmarks" / "particle_filtering.py"


class Rounds(AdaptiveCallbackHandler):
    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[BeamsPruned] = []

    def on_beams_pruned(self, event: BeamsPruned, *, run_id: UUID, **kwargs: Any) -> None:
        self.rounds.append(event)


def test_particle_filtering_end_to_end_with_the_probe_prm() -> None:
    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    examples = worked_examples(arithmetic_suite(2, seed=3, levels=("steps2",)))
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=11),
        prm=ProbePRM(),
        strategy=ParticleFiltering(n_particles=4, max_steps=3, seed=0),
        max_tokens_per_sample=STEP_TOKENS,
        max_total_tokens=10 * STEP_TOKENS,
        examples=examples,
    )
    rounds = Rounds()
    result = reasoner.invoke(
        {"question": problem.question, "gold": problem.gold}, {"callbacks": [rounds]}
    )

    beams = {b.id: b for b in result.beams or []}
    assert [b.parent_id for b in beams.values()][:4] == [None] * 4
    assert all(len(b.steps) <= 3 for b in beams.values())
    for beam in beams.values():  # each child extends its parent by one step
        if beam.parent_id is not None:
            assert beam.steps[:-1] == beams[beam.parent_id].steps
    for event in rounds.rounds:  # every resampling keeps a population of 4, copies repeated
        if event.m == 1:
            assert (event.k, len(event.kept)) == (4, 4)
            assert not set(event.dropped) & set(event.kept)
            assert all(beams[i].pruned for i in event.dropped)
            children = Counter(b.parent_id for b in beams.values() if b.parent_id in event.kept)
            for beam_id, copies in Counter(event.kept).items():  # each copy is its own step
                finished = beams[beam_id].finished or result.stop_reason == "token_budget"
                assert children[beam_id] == copies or (finished and children[beam_id] <= copies)
    assert 1 <= result.budget.samples_used <= 4 == result.budget.decided_samples
    assert 0 < result.budget.generated_tokens <= 10 * STEP_TOKENS
    assert sum(b.usage.output_tokens for b in beams.values()) == result.budget.generated_tokens
    assert all(b.step_estimates is not None for b in beams.values())
    assert result.correct is not None and result.strategy == "particle_filtering"


def test_adaptive_particle_filtering_sizes_n_from_the_probe() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=5),
        prm=ProbePRM(),
        strategy=AdaptiveParticleFiltering(max_steps=2, seed=1),
        max_samples=4,
        max_tokens_per_sample=16,
        target_confidence=0.9,
    )
    result = reasoner.invoke("What is 3 + 4?")
    estimate = result.question_estimate
    assert estimate is not None
    needed = ias_sample_count(estimate.at(0.1), 0.9)
    assert result.budget.decided_samples == min(needed, 4)
    assert result.low_confidence == (needed > 4) or result.stop_reason == "token_budget"
    assert result.budget.samples_used <= result.budget.decided_samples
    assert result.strategy == "adaptive_particle_filtering"


def test_particle_filtering_benchmark_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "pf.json"
    args = ["--questions", "1", "--particles", "1,2", "--max-steps", "1", "--step-tokens", "8",
            "--sample-tokens", "8", "--few-shot", "1", "--replicates", "20", "--threads", "1",
            "--out", str(out)]  # fmt: skip
    subprocess.run([sys.executable, str(BENCHMARK), *args], check=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["questions"] == 1 and len(report["question_ids"]) == 1
    assert set(report["summary"]) == {
        "particle filtering N=1",
        "particle filtering N=2",
        "adaptive particle filtering N<=2",
        "beam search",
        "weighted best-of-N",
    }
    for entry in report["summary"].values():
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["mean_generated_tokens"] > 0
    assert report["summary"]["beam search"]["tokens_over_beam_search"] == 1.0
    assert set(report["token_ratio_at_equal_accuracy"]) == {"beam search", "weighted best-of-N"}
    assert out.with_suffix(".png").stat().st_size > 0


def test_particle_filtering_benchmark_refuses_bad_particles(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCHMARK), "--particles", "2,x", "--out", str(tmp_path / "a.json")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--particles takes comma-separated integers" in run.stderr

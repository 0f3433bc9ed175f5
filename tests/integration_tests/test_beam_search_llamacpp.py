"""Step-level beam search on the real bundled SmolLM2 with the bundled probe PRM."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveReasoningRunnable, BeamSearch
from langchain_adaptive._sampling import draw_steps
from langchain_adaptive.evaluation.datasets import arithmetic_suite, worked_examples
from langchain_adaptive.inputs import parse_input
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, ProbePRM
from langchain_adaptive.integrations.llamacpp._probe import BUNDLED_HEAD
from tests.tracing import RunCollector

pytestmark = [
    pytest.mark.llamacpp,
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLED_HEAD / "probe.json").is_file(), reason="no bundled head"),
]

STEP_TOKENS = 24
BENCHMARK = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "beam_search.py"
RESULTS = BENCHMARK.parents[2] / "docs" / "results"


def run_benchmark(*args: str) -> None:
    subprocess.run([sys.executable, str(BENCHMARK), *args], check=True, timeout=600)


def refused_benchmark(*args: str) -> str:
    """The benchmark's stderr, after checking argparse refused ``args`` (exit status 2)."""
    run = subprocess.run([sys.executable, str(BENCHMARK), *args], capture_output=True, text=True)
    assert run.returncode == 2
    return run.stderr


def test_steps_continue_a_prefilled_partial_solution() -> None:
    chat = ChatLlamaCpp(seed=3)
    # With worked examples SmolLM2 goes on after a first step; without, it may end there
    # (the blank line after a step is its to write, and it may write end-of-text instead).
    shown = worked_examples(arithmetic_suite(4, seed=3, levels=("steps2",)))
    question = parse_input("What is (3 + 4) * 2?", examples=shown)
    steps = draw_steps(
        chat,
        question,
        ["3 + 4 = 7"],
        2,
        kwargs={"temperature": 0.8, "max_tokens": STEP_TOKENS},
        config={},
    )
    assert len(steps) == 2
    for step in steps:
        assert "\n\n" not in step.text  # generation stopped at the step delimiter
        assert 0 < step.usage.output_tokens <= STEP_TOKENS and not step.usage.estimated
    assert steps[0].usage.model_calls == 1 and steps[1].usage.model_calls == 0  # one call


def test_beam_search_end_to_end_with_the_probe_prm() -> None:
    [problem] = arithmetic_suite(1, seed=0, levels=("steps2",))
    strategy = BeamSearch(n_paths=4, beams_kept=2, samples_per_beam=2, max_steps=2)
    reasoner = AdaptiveReasoningRunnable(
        model=ChatLlamaCpp(seed=11),
        prm=ProbePRM(),
        strategy=strategy,
        max_tokens_per_sample=STEP_TOKENS,
        max_total_tokens=8 * STEP_TOKENS,
    )
    collector = RunCollector()
    result = reasoner.invoke(
        {"question": problem.question, "gold": problem.gold}, {"callbacks": [collector]}
    )

    beams = {b.id: b for b in result.beams or []}
    assert [b.parent_id for b in beams.values()][:4] == [None] * 4
    assert 1 <= len(result.candidates) <= 4 and result.budget.samples_used <= 4
    assert all(len(b.steps) <= 2 for b in beams.values())
    for beam in beams.values():
        if beam.parent_id is not None:
            assert beam.steps[: len(beams[beam.parent_id].steps)] == beams[beam.parent_id].steps
    scored = [b for b in beams.values() if b.step_estimates]
    assert scored and all(len(b.step_estimates or []) == len(b.steps) for b in scored)
    assert 0 < result.budget.generated_tokens <= 8 * STEP_TOKENS
    assert result.budget.prm_calls >= 1 and result.correct is not None
    assert sum(b.usage.output_tokens for b in beams.values()) == result.budget.generated_tokens
    children = [run.name for run in collector.root().child_runs]  # model and PRM calls are traced
    assert "ChatLlamaCpp" in children and "ProbePRM" in children


def test_beam_search_benchmark_script_runs(tmp_path: Path) -> None:
    """Few-shot, past the questions a head would be trained on, as the results pages run it."""
    out = tmp_path / "beam.json"
    args = ["--per-level", "1", "--skip-first", "1", "--few-shot", "1", "--paths", "2",
            "--beams", "1", "--per-beam", "2", "--max-steps", "1", "--step-tokens", "8",
            "--sample-tokens", "8", "--replicates", "20", "--threads", "1",
            "--probe-head", str(BUNDLED_HEAD), "--out", str(out)]  # fmt: skip
    run_benchmark(*args)
    report = json.loads(out.read_text())
    assert report["questions"] == 2 and report["prm"] == str(BUNDLED_HEAD)
    assert report["summary"]["beam search"]["tokens_over_fixed_beam_search"] == 1.0
    for entry in report["summary"].values():
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["mean_generated_tokens"] > 0
    assert {row["id"] for row in report["per_question"]["IAS-of-M"]} == {
        "steps2-1",
        "steps3-1",
    }
    shown = worked_examples(arithmetic_suite(1, seed=3, levels=("steps2", "steps3")))
    assert report["few_shot_examples"] == [e.question for e in shown]
    assert out.with_suffix(".png").stat().st_size > 0


def test_beam_search_benchmark_takes_other_levels(tmp_path: Path) -> None:
    out = tmp_path / "beam.json"
    args = ["--levels", "add1", "--per-level", "1", "--paths", "2", "--beams", "1",
            "--per-beam", "2", "--max-steps", "1", "--step-tokens", "8", "--sample-tokens", "8",
            "--replicates", "5", "--threads", "1", "--floor", "--sequential-first",
            "--out", str(out)]  # fmt: skip
    run_benchmark(*args)
    report = json.loads(out.read_text())
    assert report["levels"] == ["add1"] and report["questions"] == 1
    assert {row["id"] for row in report["per_question"]["beam search"]} == {"add1-0"}
    summary = report["summary"]
    assert {"IAS-of-K, floor", "IAS-of-M, floor", "IAS-of-K+M, floor"} <= set(summary)
    assert {"beam search, seq. 1st", "IAS-of-M, seq. 1st"} <= set(summary)
    assert summary["beam search"]["mean_first_steps"] == 2  # --paths 2, drawn at once
    assert 1 <= summary["IAS-of-M, seq. 1st"]["mean_first_steps"] <= 2
    assert summary["beam search"]["accuracy_minus_fixed_beam_search_ci95"] == [0.0, 0.0]


def test_beam_search_benchmark_with_the_calibrated_confidence_prm(tmp_path: Path) -> None:
    from langchain_adaptive.calibration import CalibrationRecord, PlattCalibrator

    records = [
        CalibrationRecord(question_id=f"q{i}", trajectory=0, k=1, num_steps=2, prefix="1 + 1 = 2",
                          complete=False, raw_score=(i + 1) / 21, successes=i % 3, trials=2,
                          trajectory_correct=True)
        for i in range(20)
    ]  # fmt: skip
    calibrator = PlattCalibrator().fit_records(records)
    calibrator.save(tmp_path / "platt")
    out = tmp_path / "beam.json"
    args = ["--levels", "steps2", "--per-level", "1", "--few-shot", "1", "--paths", "2",
            "--beams", "1", "--per-beam", "2", "--max-steps", "2", "--step-tokens", "12",
            "--sample-tokens", "8", "--replicates", "5", "--threads", "1", "--prm",
            "confidence", "--calibrator", str(tmp_path / "platt"), "--out", str(out)]  # fmt: skip
    run_benchmark(*args)
    report = json.loads(out.read_text())
    assert report["prm"] == f"token confidence, calibrator {tmp_path / 'platt'}"
    assert "best-of-2 (confidence)" in report["summary"]
    assert report["summary"]["IAS-of-K+M"]["mean_generated_tokens"] > 0
    # every selection round's widths are kept: fixed search always keeps K = 1 with M = 2
    (fixed,) = report["per_question"]["beam search"]
    assert fixed["selections"], "the first step did not end the solution, so a selection ran"
    assert all(s == {"k": 1, "m": 2, "floored": False} for s in fixed["selections"])
    summary = report["summary"]["beam search"]
    assert summary["selections"] == len(fixed["selections"]) and summary["floored_share"] == 0
    assert (summary["mean_beams_kept"], summary["mean_samples_per_beam"]) == (1, 2)


def test_beam_search_benchmark_refuses_a_calibrator_for_the_probe(tmp_path: Path) -> None:
    args = ["--calibrator", str(tmp_path), "--out", str(tmp_path / "beam.json")]
    assert "--prm confidence" in refused_benchmark(*args)


def test_beam_search_benchmark_runs_only_the_chosen_policies(tmp_path: Path) -> None:
    """A floored key turns on the floored variants; fixed beam search always runs."""
    out = tmp_path / "beam.json"
    args = ["--levels", "add1", "--per-level", "1", "--paths", "2", "--beams", "1",
            "--per-beam", "2", "--max-steps", "1", "--step-tokens", "8", "--replicates", "5",
            "--threads", "1", "--policies", "ias-km-floor", "--floor-samples", "1",
            "--out", str(out)]  # fmt: skip
    run_benchmark(*args)
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"beam search", "IAS-of-K+M, floor"}
    assert report["settings"]["floor_samples"] == 1
    # the results page's snippet that pools two such runs: fixed search against itself is 1.0x
    readme = (RESULTS / "beam-search-token-confidence.md").read_text()
    (pool,) = re.findall(
        r"python -c '(import json, random, statistics as st\nruns = .*?)'\n", readme, re.S
    )
    (tmp_path / "bench-results").mkdir()
    for skip in (70, 130):
        (tmp_path / f"bench-results/beam_search_steps2_fewshot_floor1_q{skip}.json").write_text(
            out.read_text()
        )
    pooled = subprocess.run(
        [sys.executable, "-c", pool], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split(" (")[0] for line in pooled] == [
        f"beam search {round(report['summary']['beam search']['accuracy'], 3)}",
        f"IAS-of-K+M, floor {round(report['summary']['IAS-of-K+M, floor']['accuracy'], 3)}",
    ]
    assert pooled[0].endswith("(0.0, 0.0) 1.0")


def test_the_readme_pools_sequential_first_round_runs_given_as_files(tmp_path: Path) -> None:
    """The results page's ``pool`` function over two runs, one lacking a policy."""
    small = ["--levels", "add1", "--per-level", "1", "--paths", "2", "--beams", "1",
             "--per-beam", "2", "--max-steps", "1", "--step-tokens", "8", "--replicates", "5",
             "--threads", "1"]  # fmt: skip
    first, second = tmp_path / "q310.json", tmp_path / "q430.json"
    run_benchmark(*small, "--policies", "ias-m,ias-m-seq", "--out", str(first))
    run_benchmark(*small, "--policies", "ias-m-seq", "--out", str(second))
    readme = (RESULTS / "beam-search-sequential-first-round.md").read_text()
    (pool,) = re.findall(r"^pool\(\) \{ python -c '(.*?)' \"\$@\"; \}$", readme, re.S | re.M)
    pooled = subprocess.run(
        [sys.executable, "-c", pool, str(first), str(second)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    runs = [json.loads(path.read_text()) for path in (first, second)]
    expected = []
    for name in ["beam search", "IAS-of-M, seq. 1st"]:  # IAS-of-M ran once: left out
        correct = [float(r["correct"]) for run in runs for r in run["per_question"][name]]
        expected.append(f"{name} 2 {round(statistics.fmean(correct), 3)}")
    assert [line.split(" (")[0] for line in pooled] == expected
    assert pooled[0].endswith("(0.0, 0.0) 1.0")


def test_beam_search_benchmark_refuses_an_unknown_policy(tmp_path: Path) -> None:
    args = ["--policies", "beam,ias-q", "--out", str(tmp_path / "beam.json")]
    assert "unknown --policies ['ias-q']" in refused_benchmark(*args)

"""``langchain-adaptive bench import-game24|replay`` on real recorded data and on small pools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_adaptive.calibration import IdentityCalibrator
from langchain_adaptive.cli import main
from langchain_adaptive.evaluation import BenchReport, read_pools, record_pools
from langchain_adaptive.evaluation.datasets import Problem
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

GAME24 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "game24"
needs_shared = pytest.mark.skipif(
    not GAME24.is_dir(),
    reason=f"the shared Game-of-24 data is not at {GAME24} (it sits beside the repository in CI)",
)


@needs_shared
def test_game24_import_and_replay(tmp_path: Path) -> None:
    pools = tmp_path / "game24.jsonl"
    assert (
        main(
            [
                "bench",
                "import-game24",
                "--samples",
                str(GAME24 / "gpt-4_cot_samples_puzzles900-999.json"),
                "--puzzles",
                str(GAME24 / "24.csv"),
                "--out",
                str(pools),
            ]
        )
        == 0
    )
    pool_file = read_pools(pools)
    assert len(pool_file.pools) == 100 and pool_file.header.equivalence == "exact"
    assert sum(s.correct for p in pool_file.pools for s in p.samples) == 403
    assert sum(p.success_rate == 0 for p in pool_file.pools) == 51
    # Reported usage: the first puzzle's 100 samples took 6,960 completion tokens.
    assert sum(s.output_tokens for s in pool_file.pools[0].samples) == 6960

    out = tmp_path / "report.json"
    code = main(
        [
            "bench",
            "replay",
            str(pools),
            "--replicates",
            "3",
            "--limit",
            "40",
            "--cost",
            "samples",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = BenchReport.model_validate_json(out.read_text())
    names = {s.name for s in report.policies}
    assert {"bon64-majority", "esc@w5", "adaptive-consistency@0.95", "ias[oracle]@0.9"} <= names
    assert report.questions == 40 and report.replicates == 3
    bon64 = next(s for s in report.policies if s.name == "bon64-majority")
    assert bon64.mean_samples == 64 and 0 < bon64.coverage <= 1
    coverage_ratios = [r for r in report.ratios if r.metric == "coverage" and r.cost == "samples"]
    assert {r.family for r in coverage_ratios} == {
        "ias[oracle]",
        "adaptive-consistency",
        "early-stopping sc",
    }
    assert out.with_suffix(".md").read_text().startswith("**game24.jsonl")
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert (tmp_path / "report-allocation.png").stat().st_size > 5_000


def test_replay_with_a_calibrator_on_a_recorded_pool(tmp_path: Path) -> None:
    pools = tmp_path / "pools.jsonl"
    problems = [Problem(id=f"q{i}", question=f"What is 1 + {i}?", gold="7") for i in range(4)]
    record_pools(
        ScriptedChatModel(responses=["1 + 6 = 7\n\nThe answer is 7.", "The answer is 8."]),
        problems,
        pools,
        samples=4,
        prms={"prm": ScriptedPRM(default_p=0.3)},
        progress=False,
        config={"max_concurrency": 1},
    )
    saved = tmp_path / "identity"
    IdentityCalibrator().save(saved)
    out = tmp_path / "report.json"
    code = main(
        [
            "bench",
            "replay",
            str(pools),
            "--replicates",
            "2",
            "--scorer",
            "prm",
            "--calibrator",
            f"prm-id=prm:{saved}",
            "--batch-budgets",
            "1,2.5",
            "--floor-samples",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    names = {p["name"] for p in report["policies"]}
    assert {"ias[prm]@0.9", "ias[prm-id]@0.9", "bon4-prm[prm]", "bon4-weighted[prm]"} <= names
    assert {"batch[prm]@1s", "batch[prm]@2.5s", "batch[prm-id]@2.5s"} <= names
    assert {"ias-floor2[prm]@0.9", "ias-floor2[prm-id]@0.9"} <= names
    assert "ias-floor2[oracle]@0.9" not in names
    assert any(m["family"] == "ias-floor2[prm]" for m in report["parity"])


def test_replay_selection_lets_adaptive_policies_pick_by_the_scorer(tmp_path: Path) -> None:
    """Three wrong samples outvote the right one; the scorer's pick is the right one."""
    pools = tmp_path / "pools.jsonl"
    problems = [Problem(id=f"q{i}", question=f"What is 3 + {i}?", gold="7") for i in range(2)]
    record_pools(
        ScriptedChatModel(responses=["The answer is 8."] * 3 + ["The answer is 7."]),
        problems,
        pools,
        samples=4,
        prms={"prm": ScriptedPRM(default_p=0.01, step_score=lambda s: 0.9 if "7" in s else 0.1)},
        progress=False,
        config={"max_concurrency": 1},
    )
    accuracy: dict[str, dict[str, float]] = {}
    for selection in ("majority_vote", "prm"):
        out = tmp_path / f"{selection}.json"
        argv = ["bench", "replay", str(pools), "--replicates", "2", "--scorer", "prm"]
        argv += ["--selection", selection, "--no-batch", "--batch-budgets", "4"]
        assert main([*argv, "--out", str(out)]) == 0
        report = BenchReport.model_validate_json(out.read_text())
        accuracy[selection] = {s.name: s.accuracy for s in report.policies}
    for name in ("ias[prm]@0.9", "ias[oracle]@0.9", "batch[prm]@4s"):  # all four samples
        assert accuracy["majority_vote"][name] == 0.0 and accuracy["prm"][name] == 1.0
    assert accuracy["prm"]["bon4-majority"] == 0.0  # fixed baselines keep their own rules
    assert accuracy["prm"]["bon4-prm[prm]"] == 1.0

    out = tmp_path / "compared.json"
    compare = ["--compare", "ias[prm]@0.9", "bon4-majority"]
    assert main([*argv, *compare, "--out", str(out)]) == 0
    [difference] = [
        d for d in BenchReport.model_validate_json(out.read_text()).differences
        if d.metric == "accuracy"
    ]  # fmt: skip
    assert (difference.difference, difference.cost_ratio) == (1.0, 1.0)
    batches = tmp_path / "batches.json"  # a batch budget's policy compares by its name too
    assert main([*argv, "--compare", "batch[prm]@4s", "bon4-majority", "--out", str(batches)]) == 0
    [difference] = [
        d for d in BenchReport.model_validate_json(batches.read_text()).differences
        if d.metric == "accuracy"
    ]  # fmt: skip
    assert (difference.first, difference.difference) == ("batch[prm]@4s", 1.0)
    typo = tmp_path / "typo.json"
    assert main([*argv, "--compare", "ias[prm]@0.8", "bon4-majority", "--out", str(typo)]) == 2
    assert not typo.exists()  # refused before replaying anything


def test_replay_errors_are_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"question": "q"}\n')
    assert main(["bench", "replay", str(bogus), "--out", str(tmp_path / "r.json")]) == 2
    assert "DatasetError" in capsys.readouterr().err
    code = main(
        ["bench", "replay", str(bogus), "--calibrator", "oops", "--out", str(tmp_path / "r.json")]
    )
    assert code == 2


def test_exclude_suite_leaves_out_every_named_suite() -> None:
    """A held-out suite: neither the probe's training questions nor an earlier recording's."""
    import argparse

    from langchain_adaptive.errors import ConfigurationError
    from langchain_adaptive.evaluation.cli import load_problems
    from langchain_adaptive.evaluation.datasets import arithmetic_suite

    def problems(exclude: str) -> list[Problem]:
        args = argparse.Namespace(
            dataset="arithmetic",
            per_level=40,
            suite_seed=2,
            levels="add1,mul1",
            exclude_suite=exclude,
            limit=None,
        )
        return load_problems(args)

    everything = {p.question for p in problems("none")}
    training = {p.question for p in arithmetic_suite(5, seed=0)}
    recorded = {p.question for p in arithmetic_suite(30, seed=1)}
    both = {p.question for p in problems("5:0,30:1")}
    assert both == everything - training - recorded
    assert {p.question for p in problems("5:0")} == everything - training
    assert both < everything - training  # one-digit levels are small: the suites overlap
    with pytest.raises(ConfigurationError, match="PER_LEVEL:SEED"):
        problems("5:0,six:1")


def test_live_prms_wrap_the_very_on_device_prm_a_calibrator_names() -> None:
    import argparse

    from langchain_adaptive.errors import ConfigurationError
    from langchain_adaptive.evaluation.cli import _live_prms
    from langchain_adaptive.prm import CalibratedPRM, LLMJudgePRM

    chat = ScriptedChatModel(responses=["0.5"])
    args = argparse.Namespace(model=None, threads=1, n_gpu_layers=0)
    identity = IdentityCalibrator()
    prms = _live_prms({"judge-id"}, [("judge-id", "judge", identity)], chat, args)
    assert set(prms) == {"judge", "judge-id"}
    assert isinstance(prms["judge"], LLMJudgePRM) and prms["judge"].model is chat
    calibrated = prms["judge-id"]
    assert isinstance(calibrated, CalibratedPRM)
    assert calibrated.prm is prms["judge"] and calibrated.calibrator is identity
    with pytest.raises(ConfigurationError, match="shadow"):
        _live_prms({"judge"}, [("judge", "judge", identity)], chat, args)
    with pytest.raises(ConfigurationError, match="unknown on-device PRM 'oracle'"):
        _live_prms({"x"}, [("x", "oracle", identity)], chat, args)


def test_live_refuses_a_missing_calibrator_before_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_adaptive.evaluation import cli as bench_cli

    def no_model(args: object) -> None:
        raise AssertionError("the model was loaded before the calibrator was checked")

    monkeypatch.setattr(bench_cli, "_chat_model", no_model)
    missing = tmp_path / "nowhere"
    argv = ["bench", "live", "--levels", "add1", "--per-level", "1", "--policies", "ias:j-cal"]
    argv += ["--calibrator", f"j-cal=judge:{missing}", "--out", str(tmp_path / "live.json")]
    assert main(argv) == 2
    assert "nowhere" in capsys.readouterr().err


def test_the_readme_auroc_command_runs_on_a_recorded_pool(tmp_path: Path) -> None:
    """The results page's ``python -c`` that ranks questions by each PRM's question score."""
    import re
    import subprocess
    import sys

    page = Path(__file__).resolve().parents[3] / "docs" / "results" / "live-three-prms.md"
    readme = page.read_text()
    [code] = [c for c in re.findall(r"python -c '\n(.*?)\n'\n```", readme, re.S) if "AUROC" in c]
    questions = {f"What is 3 + {i}?": ("7" if i < 2 else "9") for i in range(4)}
    out = tmp_path / "bench-results" / "arithmetic-pools.jsonl"
    record_pools(
        ScriptedChatModel(responses=["The answer is 7."]),
        [Problem(id=f"q{i}", question=q, gold=g) for i, (q, g) in enumerate(questions.items())],
        out,
        samples=2,
        prms={
            "judge": ScriptedPRM(default_p=0.5),
            "probe": ScriptedPRM(
                question_p={q: 0.8 if g == "7" else 0.2 for q, g in questions.items()}
            ),
        },
        progress=False,
        config={"max_concurrency": 1},
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["judge AUROC 0.500", "probe AUROC 1.000"]

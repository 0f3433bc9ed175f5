"""The benchmark harness end to end on the bundled SmolLM2: record, replay, live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.answers import answers_match
from langchain_adaptive.cli import main
from langchain_adaptive.evaluation import (
    BenchReport,
    Policy,
    QuestionPool,
    prepare_pools,
    read_pools,
    replay_question,
)
from langchain_adaptive.strategies import AdaptiveConsistency, BestOfN

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTIONS = ["--dataset", "arithmetic", "--levels", "add1", "--per-level", "2", "--limit", "2"]
MODEL = ["--max-tokens", "48", "--threads", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "pools.jsonl"
    code = main(
        [
            "bench",
            "record",
            *QUESTIONS,
            *MODEL,
            "--samples",
            "3",
            "--prms",
            "probe",
            "--score-steps",
            "probe",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_record_stores_graded_samples_and_probe_estimates(pools: Path) -> None:
    pool_file = read_pools(pools, model="SmolLM2-135M-Instruct.Q4_1", prms=["probe"])
    assert len(pool_file.pools) == 2
    for pool in pool_file.pools:
        assert len(pool.samples) == 3 and pool.gold is not None
        assert 0.0 <= pool.question_estimates["probe"].lower <= 1.0
        for sample in pool.samples:
            assert sample.output_tokens > 0 and sample.latency_s > 0
            expected = sample.answer is not None and answers_match(pool.gold, sample.answer)
            assert sample.correct == expected
            assert len(sample.step_estimates["probe"]) == len(sample.steps)


def test_score_steps_later_matches_recording_and_feeds_sequential_ias(
    pools: Path, tmp_path: Path
) -> None:
    rescored = tmp_path / "rescored.jsonl"
    code = main(
        ["bench", "score-steps", str(pools), "--prms", "probe", "--threads", "2",
         "--out", str(rescored)]
    )  # fmt: skip
    assert code == 0
    recorded, again = read_pools(pools), read_pools(rescored)
    assert again.header.settings["scored_steps"] == ["probe"]
    for a, b in zip(recorded.pools, again.pools, strict=True):
        for x, y in zip(a.samples, b.samples, strict=True):
            # each text is embedded on its own, so scoring later gives the same scores
            assert [e.median for e in y.step_estimates["probe"]] == pytest.approx(
                [e.median for e in x.step_estimates["probe"]], abs=1e-6
            )
    replayed = tmp_path / "replay.json"
    argv = ["bench", "replay", str(rescored), "--scorer", "probe", "--replicates", "2"]
    assert main([*argv, "--out", str(replayed)]) == 0
    names = {s.name for s in BenchReport.model_validate_json(replayed.read_text()).policies}
    assert {"sequential-ias[probe]@0.9", "bon2-prm[probe]", "bon2-weighted[probe]"} <= names


def test_replay_and_live_reports(pools: Path, tmp_path: Path) -> None:
    replayed = tmp_path / "replay.json"
    assert main(["bench", "replay", str(pools), "--replicates", "2", "--out", str(replayed)]) == 0
    report = BenchReport.model_validate_json(replayed.read_text())
    assert report.mode == "replay" and report.questions == 2
    assert {"bon2-majority", "ias[probe]@0.9", "ias[oracle]@0.9"} <= {
        s.name for s in report.policies
    }

    live = tmp_path / "live.json"
    code = main(
        [
            "bench",
            "live",
            *QUESTIONS,
            *MODEL,
            "--policies",
            "majority_vote:2,ias:probe",
            "--max-samples",
            "2",
            "--out",
            str(live),
        ]
    )
    assert code == 0
    data = json.loads(live.read_text())
    assert data["mode"] == "live" and data["wall_s"] > 0
    by_name = {p["name"]: p for p in data["policies"]}
    assert by_name["majority_vote:2"]["mean_samples"] == 2
    assert 1 <= by_name["ias[probe]@0.9"]["mean_samples"] <= 2


def test_live_compares_with_best_of_n_replayed_from_pools_of_the_same_questions(
    pools: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = tmp_path / "live.json"
    argv = ["bench", "live", *QUESTIONS, *MODEL, "--policies", "ias:probe", "--max-samples", "3",
            "--scorer", "probe", "--selection", "prm", "--floor-samples", "1",
            "--baseline-pools", str(pools), "--out", str(live)]  # fmt: skip
    assert main(argv) == 0
    report = BenchReport.model_validate_json(live.read_text())
    rows = {s.name: s for s in report.policies}
    assert set(rows) == {
        "ias-floor1[probe]@0.9",
        *(
            f"bon{n}-{rule}"
            for n in (1, 2, 3)  # 3: the whole recorded pool is always a baseline
            for rule in ("majority", "prm[probe]", "weighted[probe]")
        ),
    }
    recorded = prepare_pools(read_pools(pools).pools)
    bon2 = Policy(
        name="bon2", family="b", strategy=BestOfN(n=2, selection="majority_vote"), max_samples=2
    )
    expected = [replay_question(bon2, prepared) for prepared in recorded]
    assert rows["bon2-majority"].mean_tokens == sum(o.tokens for o in expected) / 2
    assert 1 <= rows["ias-floor1[probe]@0.9"].mean_samples <= 3
    assert {(p.baseline, p.family) for p in report.parity} >= {
        ("bon2-majority", "ias-floor1[probe]")
    }

    capsys.readouterr()
    assert main([*argv[:-1], str(tmp_path / "other.json"), "--temperature", "0"]) == 2
    assert "temperature: pools have 0.7, live has 0.0" in capsys.readouterr().err


def test_live_budgets_on_a_calibrated_judge_beside_the_raw_one(tmp_path: Path) -> None:
    """``--calibrator`` wraps the on-device judge: a calibrator sure of success draws 1 sample."""
    from langchain_adaptive.calibration import PlattCalibrator

    sure = tmp_path / "platt-sure"
    raw = [i / 25 for i in range(1, 25)]
    PlattCalibrator().fit(raw, None, [50] * len(raw), [50] * len(raw)).save(sure)
    live = tmp_path / "live.json"
    argv = ["bench", "live", *QUESTIONS, *MODEL, "--policies", "ias:judge,ias:judge-sure",
            "--max-samples", "3", "--calibrator", f"judge-sure=judge:{sure}",
            "--out", str(live)]  # fmt: skip
    assert main(argv) == 0
    rows = {s.name: s for s in BenchReport.model_validate_json(live.read_text()).policies}
    assert set(rows) == {"ias[judge]@0.9", "ias[judge-sure]@0.9"}
    assert rows["ias[judge-sure]@0.9"].mean_samples == 1  # N_IAS(p >= 0.9) at C = 0.9
    assert 1 <= rows["ias[judge]@0.9"].mean_samples <= 3


def test_replaying_a_live_run_makes_its_decisions() -> None:
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp

    chat = ChatLlamaCpp(seed=5, n_threads=2)
    strategy = AdaptiveConsistency(threshold=0.8)
    live = AdaptiveReasoningRunnable(
        model=chat, strategy=strategy, max_samples=5, max_tokens_per_sample=48
    ).invoke({"question": "What is 4 + 3?", "gold": "7"})
    pool = QuestionPool.from_result(live, id="q")
    [prepared] = prepare_pools([pool])
    policy = Policy(name="ac", family="ac", strategy=strategy, max_samples=len(pool.samples))
    out = replay_question(policy, prepared)
    assert (out.samples, out.stop_reason, out.correct) == (
        live.budget.samples_used,
        live.stop_reason,
        bool(live.correct),
    )


def test_score_steps_with_the_policys_token_confidence(pools: Path, tmp_path: Path) -> None:
    """The confidence PRM reads the samples under the prompt recorded in the pool header."""
    from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp, TokenConfidencePRM

    scored = tmp_path / "confidence.jsonl"
    argv = ["bench", "score-steps", str(pools), "--prms", "confidence", "--threads", "2"]
    assert main([*argv, "--out", str(scored)]) == 0
    pool = read_pools(scored, prms=["confidence"]).pools[0]
    expected = TokenConfidencePRM(policy=ChatLlamaCpp()).score(
        pool.question, [s.steps for s in pool.samples]
    )
    for sample, row in zip(pool.samples, expected, strict=True):
        got = [e.median for e in sample.step_estimates["confidence"]]
        assert got == pytest.approx([e.median for e in row], rel=1e-4)
        assert all(0.0 < value <= 1.0 for value in got)

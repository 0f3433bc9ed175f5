"""Held-out halves: the split, fitting calibrators on the other half, and the replay CLI flags."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from langchain_adaptive.calibration import Calibrator
from langchain_adaptive.cli import main
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.evaluation import PoolHeader, QuestionPool, RecordedSample, write_pools
from langchain_adaptive.evaluation.holdout import (
    calibration_data,
    fit_pool_calibrator,
    read_question_ids,
    select_questions,
    split_questions,
)
from langchain_adaptive.evaluation.report import BenchReport
from langchain_adaptive.results import SuccessEstimate


def test_the_split_is_a_deterministic_half_that_ignores_order() -> None:
    ids = [f"q{i}" for i in range(21)]
    train, test = split_questions(ids, seed=4)
    assert len(train) == 11 and len(test) == 10 and set(train).isdisjoint(test)
    assert set(train) | set(test) == set(ids)
    again, _ = split_questions(list(reversed(ids)), seed=4)
    assert set(again) == set(train)  # the same halves whatever the order
    other, _ = split_questions(ids, seed=5)
    assert set(other) != set(train)
    assert train == [q for q in ids if q in set(train)]  # each half keeps the input order
    with pytest.raises(ConfigurationError, match="unique"):
        split_questions(["a", "a"])


def _logit_pool(qid: str, rng: np.random.Generator) -> QuestionPool:
    """A reward-logit pool: no question estimate, one raw score per sample, any real value."""
    samples = []
    for i in range(8):
        ok = bool(rng.uniform() < 0.4)
        raw = float(rng.normal(2.0 if ok else -1.0, 1.5))
        samples.append(
            RecordedSample(
                text=f"s{i}",
                answer="1" if ok else str(10 + i % 3),
                correct=ok,
                output_tokens=20 + i,
                step_estimates={"rm": [SuccessEstimate.point(1 / (1 + math.exp(-raw)), raw)]},
            )
        )
    return QuestionPool(id=qid, question=f"question {qid}", gold="1", samples=samples)


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    header = PoolHeader(model="test-model", prms=["rm"], samples_per_question=8,
                        max_tokens_per_sample=64, equivalence="exact")  # fmt: skip
    return write_pools(
        tmp_path / "pools.jsonl", header, [_logit_pool(f"q{i}", rng) for i in range(30)]
    )


def test_a_calibrator_is_fitted_on_recorded_sample_scores(pool_file: Path) -> None:
    from langchain_adaptive.evaluation import read_pools

    pools = read_pools(pool_file).pools
    raw, correct, groups = calibration_data(pools, "rm")
    assert len(raw) == 240 and min(raw) < 0 < max(raw) and groups[0] == "q0"
    isotonic = fit_pool_calibrator(pools, "rm", "isotonic")
    assert isotonic.score_scale == "real" and isotonic.base_rate == pytest.approx(np.mean(correct))
    with pytest.raises(ConfigurationError, match=r"no sample .* has step scores from 'judge'"):
        fit_pool_calibrator(pools, "judge", "platt")
    chosen, others = select_questions(pools, split="test", seed=1)
    assert len(chosen) == 15 and {p.id for p in chosen}.isdisjoint(p.id for p in others)


def _replay(pool_file: Path, out: Path, *extra: str) -> BenchReport:
    argv = ["bench", "replay", str(pool_file), "--replicates", "2", "--confidences", "0.9"]
    assert main([*argv, *extra, "--out", str(out)]) == 0
    return BenchReport.model_validate_json(out.read_text())


def test_replay_fits_on_the_other_half_and_matches_a_saved_fit(
    pool_file: Path, tmp_path: Path
) -> None:
    split = ["--split", "test", "--split-seed", "3"]
    fitted = _replay(
        pool_file, tmp_path / "fit.json", *split, "--scorer", "rm", "--fit", "rm-iso=rm:isotonic",
        "--scorer", "rm-iso",
    )  # fmt: skip
    assert fitted.questions == 15
    names = {s.name for s in fitted.policies}
    assert {"bon1-prm[rm]", "bon8-weighted[rm]", "bon8-weighted[rm-iso]"} <= names
    assert not any(name.startswith("ias[rm") for name in names)  # rm scores samples only
    assert any("rm-iso: isotonic calibration of 'rm' fitted on the other 15" in n
               for n in fitted.notes)  # fmt: skip
    # the same calibrator saved by fit-calibrator on the train half, loaded by --calibrator
    saved = tmp_path / "iso"
    argv = ["bench", "fit-calibrator", "--pools", str(pool_file), "--split", "train"]
    assert main([*argv, "--split-seed", "3", "--source", "rm", "--out", str(saved)]) == 0
    assert Calibrator.load(saved).metadata["model"] == "test-model"
    loaded = _replay(
        pool_file, tmp_path / "load.json", *split, "--scorer", "rm,rm-iso",
        "--calibrator", f"rm-iso=rm:{saved}",
    )  # fmt: skip
    accuracy = {s.name: (s.accuracy, s.mean_tokens) for s in loaded.policies}
    assert accuracy == {s.name: (s.accuracy, s.mean_tokens) for s in fitted.policies}


def test_replay_keeps_the_questions_named_in_a_file(pool_file: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# held out\nq3\nq7\n\nq11\n")
    assert read_question_ids(ids) == ["q3", "q7", "q11"]
    report = _replay(pool_file, tmp_path / "r.json", "--questions", str(ids), "--scorer", "rm")
    assert report.questions == 3
    ids.write_text("q3\nnope\n")
    assert main(["bench", "replay", str(pool_file), "--questions", str(ids),
                 "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip


def test_replay_takes_orders_from_a_file(pool_file: Path, tmp_path: Path) -> None:
    orders = tmp_path / "orders.json"
    orders.write_text(
        json.dumps([list(range(8)), list(range(7, -1, -1)), [3, 1, 2, 0, 4, 5, 6, 7]])
    )
    argv = ["bench", "replay", str(pool_file), "--orders", str(orders), "--scorer", "rm"]
    assert main([*argv, "--out", str(tmp_path / "o.json")]) == 0
    report = BenchReport.model_validate_json((tmp_path / "o.json").read_text())
    assert report.replicates == 2  # one per order after the first
    assert any("replicate r draws in order r" in note for note in report.notes)
    orders.write_text(json.dumps([[0, 1, 2]]))
    assert main([*argv, "--out", str(tmp_path / "bad.json")]) == 2


def test_fit_needs_questions_left_to_fit_on(
    pool_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "replay", str(pool_file), "--fit", "rm-iso=rm:isotonic"]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    assert "choose a subset with --split or --questions" in capsys.readouterr().err
    argv = ["bench", "replay", str(pool_file), "--split", "test", "--fit", "rm-iso=rm:magic"]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    assert "KIND must be one of identity, platt, isotonic, histogram" in capsys.readouterr().err

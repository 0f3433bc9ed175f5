"""Strategies for scorers that score samples, not questions: first-sample IAS, sequential IAS
at round size 1, the answer-level stop rule with futility, and DeepConf's filtered vote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive._selection import select
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.calibration._answer_stop import (
    FEATURE_NAMES,
    AnswerStopModel,
    answer_features,
)
from langchain_adaptive.errors import CalibrationError, ConfigurationError
from langchain_adaptive.evaluation import Policy, QuestionPool, prepare_pools, replay_question
from langchain_adaptive.evaluation.pools import RecordedSample
from langchain_adaptive.evaluation.stop_rule import (
    answer_stop_policies,
    fit_answer_stop,
    stop_rule_examples,
)
from langchain_adaptive.results import Candidate, SuccessEstimate
from langchain_adaptive.strategies import (
    AnswerConfidenceStop,
    FirstSampleIAS,
    SequentialAdaptiveBestOfN,
    build_strategy,
)
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 14\n\nThe answer is 14."
QUESTION = "What is 7 + 8?"
SERIAL = {"max_concurrency": 1}


def _runnable(script: list[str], strategy: object, **settings: object) -> AdaptiveReasoningRunnable:
    return AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=script),
        prm=ScriptedPRM(),  # 0.9 to steps naming 15, else 0.1
        strategy=strategy,  # type: ignore[arg-type]
        max_samples=settings.pop("max_samples", 12),  # type: ignore[arg-type]
        **settings,  # type: ignore[arg-type]
    )


def _asked_question_alone(prm: ScriptedPRM) -> bool:
    return any(not steps for _, solutions in prm.calls for steps in solutions)


def _candidate(index: int, answer: str | None, score: float, correct: bool) -> Candidate:
    return Candidate(
        index=index,
        text=f"The answer is {answer}.",
        steps=[f"The answer is {answer}."],
        answer=answer,
        step_estimates=[SuccessEstimate.point(score)],
        score=score,
        correct=correct,
    )


# -- first-sample IAS ---------------------------------------------------------------------


def test_first_sample_ias_budgets_on_the_first_samples_score() -> None:
    runnable = _runnable([RIGHT], "first_sample_ias", target_confidence=0.99)
    result = runnable.invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    # the first sample scores 0.9, so N = ceil(log 0.01 / log 0.1) = 2 in all
    assert result.budget.samples_used == ias_sample_count(0.9, 0.99) == 2
    assert result.stop_reason == "adaptive_budget" and result.correct
    assert not _asked_question_alone(runnable.prm)  # type: ignore[arg-type]


def test_first_sample_ias_spends_the_cap_or_a_floor_on_a_doubtful_first_sample() -> None:
    capped = _runnable([WRONG], "first_sample_ias", target_confidence=0.99, max_samples=6)
    result = capped.invoke(QUESTION, SERIAL)
    assert result.budget.samples_used == 6 and result.stop_reason == "max_samples"
    assert result.low_confidence
    floored = _runnable(
        [WRONG], FirstSampleIAS(unreachable="floor", floor_samples=2), target_confidence=0.99
    )
    result = floored.invoke(QUESTION, SERIAL)
    assert result.budget.samples_used == 2 and result.stop_reason == "low_confidence_floor"


# -- sequential IAS without a question estimate ------------------------------------------------


def test_sequential_ias_1_never_asks_for_a_question_estimate() -> None:
    strategy = build_strategy("sequential_ias_1")
    assert isinstance(strategy, SequentialAdaptiveBestOfN) and strategy.round_size == 1
    runnable = _runnable([WRONG, WRONG, RIGHT], strategy, target_confidence=0.9)
    result = runnable.invoke(QUESTION, SERIAL)
    # 0.1, 0.1 then 0.9: 1 - 0.9 * 0.9 * 0.1 = 0.919 >= 0.9 after the third sample
    assert result.budget.samples_used == 3 and result.stop_reason == "adaptive_budget"
    assert not _asked_question_alone(runnable.prm)  # type: ignore[arg-type]


# -- the stop model -------------------------------------------------------------------------


def _toy_model(selection: str = "weighted_vote") -> AnswerStopModel:
    """Fitted on prefixes where a well-scored leader is right and a badly scored one is not."""
    rng = np.random.default_rng(0)
    rows, now, gain = [], [], []
    for _ in range(200):
        good = bool(rng.random() < 0.5)
        n = int(rng.integers(1, 6))
        drawn = [
            _candidate(i, "15" if good else "14", 0.9 if good else 0.1, good) for i in range(n)
        ]
        _, features = answer_features(drawn, selection)  # type: ignore[arg-type]
        rows.append(features)
        now.append(good)
        gain.append(not good and n < 2)  # a bad leader is only fixable early
    return AnswerStopModel(selection=selection).fit(rows, now, gain)  # type: ignore[arg-type]


def test_features_follow_the_selected_answer() -> None:
    drawn = [
        _candidate(0, "14", 0.2, False),
        _candidate(1, "15", 0.9, True),
        _candidate(2, "15", 0.8, True),
        _candidate(3, None, 0.5, False),
    ]
    chosen, features = answer_features(drawn)
    assert chosen == select(drawn, "weighted_vote").index == 1
    named = dict(zip(FEATURE_NAMES, features, strict=True))
    assert named["supporters"] == 2 and named["others"] == 1 and named["abstentions"] == 1
    assert named["log_samples"] == pytest.approx(np.log(4))
    assert named["supporters_mean_logit"] == pytest.approx((np.log(9) + np.log(4)) / 2)


def test_the_model_learns_which_way_scores_point_and_round_trips(tmp_path: Path) -> None:
    model = _toy_model()
    good = answer_features([_candidate(0, "15", 0.9, True)])[1]
    bad = answer_features([_candidate(0, "14", 0.1, False)])[1]
    assert model.predict(good).correct > 0.8 > 0.2 > model.predict(bad).correct
    loaded = AnswerStopModel.load(model.save(tmp_path / "rule"))
    assert loaded.predict(good) == model.predict(good)
    assert loaded.weights("gain") == model.weights("gain")


def test_bad_stop_rule_files_get_a_calibration_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not a saved stop rule"):
        AnswerStopModel.load(tmp_path)
    directory = _toy_model().save(tmp_path / "rule")
    config = json.loads((directory / "stop_rule.json").read_text())
    (directory / "stop_rule.json").write_text(json.dumps({**config, "format_version": 9}))
    with pytest.raises(CalibrationError, match="format version"):
        AnswerStopModel.load(directory)
    (directory / "stop_rule.json").write_text("[" * 100_000)  # nesting must not escape
    with pytest.raises(CalibrationError):
        AnswerStopModel.load(directory)
    with pytest.raises(CalibrationError, match="not fitted"):
        AnswerStopModel().predict([0.0] * len(FEATURE_NAMES))
    with pytest.raises(CalibrationError, match="columns"):
        AnswerStopModel().fit([[1.0, 2.0]] * 20, [True] * 20, [False] * 20)


# -- the strategy, live ------------------------------------------------------------------------


def test_answer_stop_stops_once_the_returned_answer_is_likely_right() -> None:
    strategy = AnswerConfidenceStop(model=_toy_model(), threshold=0.8)
    result = _runnable([RIGHT], strategy).invoke({"question": QUESTION, "gold": "15"}, SERIAL)
    assert result.budget.samples_used == 1 and result.stop_reason == "answer_confident"
    assert result.confidence is not None and result.confidence >= 0.8
    assert not result.low_confidence and result.correct


def test_answer_stop_gives_up_on_a_hopeless_question_only_with_futility() -> None:
    without = AnswerConfidenceStop(model=_toy_model(), threshold=0.8)
    result = _runnable([WRONG], without, max_samples=5).invoke(QUESTION, SERIAL)
    assert result.budget.samples_used == 5 and result.stop_reason == "max_samples"
    futile = AnswerConfidenceStop(model=_toy_model(), threshold=0.8, futility=0.2)
    result = _runnable([WRONG], futile, max_samples=5).invoke(QUESTION, SERIAL)
    assert result.stop_reason == "futile" and result.low_confidence
    assert result.budget.samples_used < 5 and result.answer == "14"


def test_answer_stop_works_in_batch() -> None:
    strategy = AnswerConfidenceStop(model=_toy_model(), threshold=0.8)
    results = _runnable([RIGHT], strategy).batch([QUESTION, QUESTION])
    assert [r.stop_reason for r in results] == ["answer_confident"] * 2


def test_answer_stop_refuses_a_model_of_another_selection_rule() -> None:
    with pytest.raises(ValueError, match="same rule"):
        AnswerConfidenceStop(model=_toy_model("majority_vote"))
    with pytest.raises(ValueError, match="fitted"):
        AnswerConfidenceStop(model=AnswerStopModel())


# -- fitting on pools and replaying --------------------------------------------------------


def _pool(id: str, answers: list[str | None], gold: str, scores: list[float]) -> QuestionPool:
    return QuestionPool(
        id=id,
        question=f"question {id}",
        gold=gold,
        samples=[
            RecordedSample(
                text=f"The answer is {a}.",
                answer=a,
                correct=a == gold,
                output_tokens=10,
                step_estimates={"rm": [SuccessEstimate.point(s)]},
            )
            for a, s in zip(answers, scores, strict=True)
        ],
    )


def _pools() -> list[QuestionPool]:
    easy = [_pool(f"e{i}", ["5"] * 6, "5", [0.9] * 6) for i in range(6)]
    hopeless = [_pool(f"h{i}", ["1", "2", "3", None, "4", "6"], "5", [0.1] * 6) for i in range(6)]
    mixed = [
        _pool(f"m{i}", ["5", "7", "5", "7", "5", None], "5", [0.7, 0.3, 0.6, 0.4, 0.7, 0.2])
        for i in range(6)
    ]
    return easy + hopeless + mixed


def test_stop_rule_examples_label_every_prefix() -> None:
    prepared = prepare_pools(_pools())
    x, now, gain = stop_rule_examples(prepared, "rm", orders=2)
    assert x.shape == (18 * 2 * 6, len(FEATURE_NAMES))
    assert not np.any(now & gain)  # right now and fixable later exclude each other
    easy_rows = slice(0, 6 * 2 * 6)
    assert now[easy_rows].all() and not gain[easy_rows].any()


def test_fitted_rule_replays_cheaper_than_the_cap_on_easy_and_hopeless_questions() -> None:
    pools = _pools()
    prepared = prepare_pools(pools)
    model = fit_answer_stop(prepared, "rm", orders=5)
    assert model.metadata["scorer"] == "rm"
    policies = {p.name: p for p in answer_stop_policies("rm", model, "rm", max_samples=6)}
    futile = policies["answer-stop-futile[rm]@0.05"]
    outcomes = {pool.pool.id: replay_question(futile, pool) for pool in prepared}
    assert outcomes["e0"].samples == 1 and outcomes["e0"].correct
    assert outcomes["h0"].samples < 6 and outcomes["h0"].stop_reason == "futile"
    assert policies["answer-stop[rm]@0.9"].strategy.futility is None  # type: ignore[attr-defined]


def test_replay_of_first_sample_ias_needs_no_question_estimate() -> None:
    prepared = prepare_pools(_pools())
    policy = Policy(
        name="first-sample", family="first-sample", strategy=FirstSampleIAS(),
        scorer="rm", target_confidence=0.99, max_samples=6,
    )  # fmt: skip
    by_id = {p.pool.id: replay_question(policy, p) for p in prepared}
    assert by_id["e0"].samples == 2 and by_id["h0"].samples == 6


# -- DeepConf's offline filter --------------------------------------------------------------


def test_filtered_votes_keep_the_most_confident_share() -> None:
    drawn = [_candidate(i, "14", 0.3, False) for i in range(9)] + [_candidate(9, "15", 0.95, True)]
    assert select(drawn, "weighted_vote").answer == "14"  # 2.7 against 0.95
    assert select(drawn, "filtered_vote_top10").answer == "15"  # keeps 1 of 10
    assert select(drawn, "filtered_vote_top90").answer == "14"  # keeps 9 of 10
    assert select(drawn, "filtered_vote_top10").votes == 1


def test_unknown_strategy_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        build_strategy("answer_stop")  # no fitted model


# -- the replay CLI: every rule for sample scorers, fitted on the other half ----------------


def test_replay_cli_fits_stop_rules_on_the_other_half(tmp_path: Path) -> None:
    from langchain_adaptive.cli import main
    from langchain_adaptive.evaluation import BenchReport
    from langchain_adaptive.evaluation.pools import PoolHeader, write_pools

    header = PoolHeader(model="toy", prms=["rm"], samples_per_question=6, max_tokens_per_sample=10)
    path = write_pools(tmp_path / "pool.jsonl", header, _pools() * 1)
    out = tmp_path / "report.json"
    argv = [
        "bench", "replay", str(path), "--split", "test", "--fit", "rm-iso=rm:isotonic",
        "--scorer", "rm-iso", "--selection", "weighted_vote", "--sample-rules", "rm-iso",
        "--filtered-vote", "rm-iso", "--fit-stop", "stop=rm-iso", "--stop-thresholds", "0.8,0.9",
        "--replicates", "2", "--no-batch", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = BenchReport.model_validate_json(out.read_text())
    names = {p.name for p in report.policies}
    assert {
        "first-sample-ias[rm-iso]@0.99",
        "sequential-ias-1[rm-iso]@0.99",
        "bon6-top10[rm-iso]",
        "answer-stop[stop]@0.8",
        "answer-stop-futile[stop]@0.05",
    } <= names
    assert report.questions == 9 and not report.notes[-1].startswith("1 answer")
    assert any(
        "answer-stop[stop]: stop rule on 'rm-iso' fitted on the other 9" in n for n in report.notes
    )
    # nothing left to fit on without a split: one line, exit 2
    assert main([*argv[:3], "--fit-stop", "stop=rm", "--out", str(out)]) == 2


def test_cross_fitting_replays_every_question_with_rules_fitted_without_it(
    tmp_path: Path,
) -> None:
    from langchain_adaptive.cli import main
    from langchain_adaptive.evaluation import BenchReport
    from langchain_adaptive.evaluation.pools import PoolHeader, write_pools
    from langchain_adaptive.evaluation.stop_rule import CrossFitted

    header = PoolHeader(model="toy", prms=["rm"], samples_per_question=6, max_tokens_per_sample=10)
    path = write_pools(tmp_path / "pool.jsonl", header, _pools())
    out = tmp_path / "report.json"
    argv = [
        "bench", "replay", str(path), "--cross-fit", "--fit", "rm-iso=rm:isotonic",
        "--scorer", "rm-iso", "--selection", "weighted_vote", "--fit-stop", "stop=rm-iso",
        "--stop-thresholds", "0.9", "--futilities", "0.05", "--replicates", "2", "--no-batch",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = BenchReport.model_validate_json(out.read_text())
    assert report.questions == 18  # both halves in one report
    assert sum("fitted on the other 9" in note for note in report.notes) == 4  # 2 fits x 2 folds
    assert main([*argv[:-2], "--split", "test", "--out", str(out)]) == 2  # one or the other
    with pytest.raises(ValueError, match="select alike"):
        CrossFitted(
            by_question={"a": FirstSampleIAS(selection="prm"), "b": FirstSampleIAS()},
        )


def test_real_pools_script_cross_fits_each_pool() -> None:
    import os
    import shlex
    import subprocess

    from langchain_adaptive.cli import _build_parser

    script = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "real_pools.sh"
    done = subprocess.run(
        ["bash", str(script), "replay"],
        env={**os.environ, "DRY_RUN": "1", "OUT": "out"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parser = _build_parser()
    parsed = [parser.parse_args(shlex.split(line)[1:]) for line in done.stdout.splitlines()]
    assert [Path(a.pools).name for a in parsed] == [
        "gsm8k-qwen05b.jsonl",
        "math500-qwen15b.jsonl",
        "game24-cot.jsonl",
    ]
    assert all(a.cross_fit for a in parsed)
    assert parsed[0].fit_stop == ["logprob=logprob-iso"] and parsed[1].fit == [
        "prm-iso=prm:isotonic"
    ]


def test_real_pools_summary_tables_and_figure(tmp_path: Path) -> None:
    import subprocess
    import sys

    from langchain_adaptive.cli import main
    from langchain_adaptive.evaluation.pools import PoolHeader, write_pools

    header = PoolHeader(model="toy", prms=["rm"], samples_per_question=6, max_tokens_per_sample=10)
    path = write_pools(tmp_path / "pool.jsonl", header, _pools())
    results = tmp_path / "results"
    argv = [
        "bench", "replay", str(path), "--cross-fit", "--fit", "rm-iso=rm:isotonic",
        "--scorer", "rm-iso", "--selection", "weighted_vote", "--sample-rules", "rm-iso",
        "--fit-stop", "stop=rm-iso", "--replicates", "3", "--no-batch",
        "--out", str(results / "gsm8k.json"),
    ]  # fmt: skip
    assert main(argv) == 0
    script = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"
    done = subprocess.run(
        [
            sys.executable,
            str(script / "real_pools_summary.py"),
            str(results),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "real-pools.json").read_text())
    tables = summary["gsm8k"]["baselines"]
    assert list(tables) == ["bon6-majority", "bon6-weighted[rm-iso]"]
    families = {row["family"] for row in tables["bon6-majority"]}
    assert {"answer-stop-futile[stop]", "sequential-ias-1[rm-iso]"} <= families
    assert (tmp_path / "real-pools.png").stat().st_size > 10_000
    assert "| answer-stop[stop] |" in (tmp_path / "real-pools-tables.md").read_text()


def test_fit_stop_rule_cli_saves_a_rule_that_live_policies_and_ask_use(tmp_path: Path) -> None:
    from langchain_adaptive._reasoner_flags import build_reasoner
    from langchain_adaptive.cli import _build_parser, main
    from langchain_adaptive.evaluation.live import live_policy
    from langchain_adaptive.evaluation.pools import PoolHeader, write_pools

    header = PoolHeader(model="toy", prms=["rm"], samples_per_question=6, max_tokens_per_sample=10)
    path = write_pools(tmp_path / "pool.jsonl", header, _pools())
    rule = tmp_path / "rule"
    argv = ["bench", "fit-stop-rule", "--pools", str(path), "--split", "train"]
    assert main([*argv, "--scorer", "rm", "--orders", "3", "--out", str(rule)]) == 0
    model = AnswerStopModel.load(rule)
    assert model.metadata["questions"] == 9 and model.metadata["model"] == "toy"
    live = live_policy(
        "answer_stop:rm@0.8",
        prms={"rm": ScriptedPRM()},
        max_samples=6,
        target_confidence=0.9,
        stop_model=model,
    )
    assert isinstance(live.policy.strategy, AnswerConfidenceStop)
    assert live.policy.strategy.threshold == 0.8
    with pytest.raises(ConfigurationError, match="fitted stop rule"):
        live_policy(
            "answer_stop:rm", prms={"rm": ScriptedPRM()}, max_samples=6, target_confidence=0.9
        )
    # ask: the strategy and its rule go together, refused before any model loads
    ask = _build_parser().parse_args(["ask", "What is 2 + 3?", "--strategy", "answer_stop"])
    with pytest.raises(ConfigurationError, match="go together"):
        build_reasoner(ask)


def test_settings_on_a_strategy_instance_are_validated() -> None:
    strategy = AnswerConfidenceStop(model=_toy_model(), threshold=0.8)
    assert build_strategy(strategy, threshold=0.7).threshold == 0.7  # type: ignore[attr-defined]
    assert build_strategy(strategy, threshold=0.7).model is strategy.model  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="same rule"):
        build_strategy(strategy, selection="majority_vote")  # the model judges weighted votes
    with pytest.raises(ConfigurationError):
        build_strategy(FirstSampleIAS(), quantile=2.0)

"""Recording pools: resumable, checked against their header, one bad question loses nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from langchain_adaptive.calibration import IdentityCalibrator
from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError, DatasetError
from langchain_adaptive.evaluation import (
    PoolMismatchError,
    add_calibrated_estimates,
    arecord_pools,
    read_pools,
    record_pools,
    score_pools,
)
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.evaluation.pools import read_pool_header
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "3 + 4 = 7\n\nThe answer is 7."
WRONG = "3 + 4 = 8\n\nThe answer is 8."
PROBLEMS = [Problem(id=f"q{i}", question=f"What is 3 + 4? ({i})", gold="7") for i in range(3)]
SERIAL = {"max_concurrency": 1}


def _record(out: Path, model: ScriptedChatModel, **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("prms", {"prm": ScriptedPRM(default_p=0.4)})
    return record_pools(model, PROBLEMS, out, samples=4, progress=False, config=SERIAL, **kwargs)


def test_pools_hold_samples_grades_costs_and_estimates(tmp_path: Path) -> None:
    out = tmp_path / "pools.jsonl"
    summary = _record(out, ScriptedChatModel(responses=[RIGHT, WRONG]))
    assert (summary.recorded, summary.already_recorded, summary.failed) == (3, 0, {})
    pool_file = read_pools(out, model="ScriptedChatModel", prms=["prm"])
    assert pool_file.header.samples_per_question == 4 and pool_file.header.prms == ["prm"]
    pool = pool_file.pools[0]
    assert [s.correct for s in pool.samples] == [True, False, True, False]
    assert pool.success_rate == 0.5
    assert pool.samples[0].steps == ["3 + 4 = 7", "The answer is 7."]
    assert pool.samples[0].output_tokens == len(RIGHT.split())
    assert pool.question_estimates["prm"].median == pytest.approx(0.4)
    assert len(pool.samples[0].step_estimates["prm"]) == 2
    assert summary.generated_tokens == sum(
        s.output_tokens for p in pool_file.pools for s in p.samples
    )
    assert read_pool_header(out) == pool_file.header


def test_a_rerun_resumes_and_other_settings_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "pools.jsonl"
    model = ScriptedChatModel(responses=[RIGHT])
    _record(out, model)
    calls = len(model.calls)
    again = _record(out, model)
    assert (again.recorded, again.already_recorded) == (0, 3) and len(model.calls) == calls
    with pytest.raises(PoolMismatchError, match="samples_per_question"):
        record_pools(model, PROBLEMS, out, samples=8, prms={"prm": ScriptedPRM()}, progress=False)
    with pytest.raises(PoolMismatchError, match="not 'other-model'"):
        read_pools(out, model="other-model")
    with pytest.raises(PoolMismatchError, match="no estimates from PRM"):
        read_pools(out, prms=["judge"])


def test_one_failing_question_is_skipped_and_retried(tmp_path: Path) -> None:
    out = tmp_path / "pools.jsonl"
    # Calls 4..7 are the second question's samples (one call per sample, serialised).
    broken = ScriptedChatModel(responses=[RIGHT], fail_on_calls={5})
    summary = _record(out, broken)
    assert summary.recorded == 2 and list(summary.failed) == ["q1"]
    assert "scripted failure" in summary.failed["q1"]
    assert [p.id for p in read_pools(out).pools] == ["q0", "q2"]
    retry = _record(out, ScriptedChatModel(responses=[RIGHT]))
    assert (retry.recorded, retry.already_recorded) == (1, 2)
    assert sorted(p.id for p in read_pools(out).pools) == ["q0", "q1", "q2"]


def test_a_truncated_last_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "pools.jsonl"
    _record(out, ScriptedChatModel(responses=[RIGHT]))
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 40])  # a crash mid-line
    with caplog.at_level(logging.WARNING):
        pools = read_pools(out).pools
    assert [p.id for p in pools] == ["q0", "q1"]
    assert "skipped 1 malformed line(s) (line 4" in caplog.text
    resumed = _record(out, ScriptedChatModel(responses=[RIGHT]))
    assert resumed.recorded == 1 and len(read_pools(out).pools) == 3


def test_not_a_pool_file(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "q", "gold": "1"}\n')
    with pytest.raises(DatasetError, match="not a pool file") as caught:
        read_pools(path)
    assert caught.value.line == 1
    with pytest.raises(DatasetError, match="not a pool file"):
        read_pool_header(path)


def test_bad_settings_are_refused_before_any_call(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    out = tmp_path / "p.jsonl"
    with pytest.raises(ConfigurationError, match="samples must be >= 1"):
        record_pools(model, PROBLEMS, out, samples=0, progress=False)
    with pytest.raises(ConfigurationError, match="were not given"):
        record_pools(model, PROBLEMS, out, score_steps_with=["judge"], progress=False)
    with pytest.raises(AdaptiveInputError, match="repeats"):
        record_pools(model, [PROBLEMS[0], PROBLEMS[0]], out, progress=False)
    with pytest.raises(AdaptiveInputError, match="gold"):
        record_pools(model, [Problem(id="x", question="q")], out, progress=False)
    assert model.calls == [] and not out.exists()


def test_async_recording_with_concurrency(tmp_path: Path) -> None:
    out = tmp_path / "pools.jsonl"
    problems = [Problem(id=f"a{i}", question=f"What is 3 + 4? [{i}]", gold="7") for i in range(6)]
    summary = asyncio.run(
        arecord_pools(
            ScriptedChatModel(responses=[RIGHT]),
            problems,
            out,
            samples=3,
            prms={"prm": ScriptedPRM()},
            progress=False,
            max_concurrency=3,
        )
    )
    assert summary.recorded == 6
    assert sorted(p.id for p in read_pools(out).pools) == [p.id for p in problems]


def test_calibrated_estimates_are_derived_from_recorded_raw_scores(tmp_path: Path) -> None:
    out = tmp_path / "pools.jsonl"
    _record(out, ScriptedChatModel(responses=[RIGHT, WRONG]))
    pools = read_pools(out).pools
    derived = add_calibrated_estimates(pools, "prm", IdentityCalibrator(), "prm-identity")
    for before, after in zip(pools, derived, strict=True):
        assert after.question_estimates["prm-identity"].median == pytest.approx(
            before.question_estimates["prm"].median
        )
        for old, new in zip(before.samples, after.samples, strict=True):
            medians = [e.median for e in new.step_estimates["prm-identity"]]
            assert medians == pytest.approx([e.median for e in old.step_estimates["prm"]])
    assert "prm-identity" not in pools[0].question_estimates  # the input is not mutated
    with pytest.raises(ConfigurationError, match="already has"):
        add_calibrated_estimates(derived, "prm", IdentityCalibrator(), "prm-identity")
    with pytest.raises(ConfigurationError, match="no estimates from 'judge'"):
        add_calibrated_estimates(pools, "judge", IdentityCalibrator(), "x")


class _FailsOnOne(ScriptedPRM):
    """Fails to score the steps of one question, as a flaky PRM server might."""

    def _score(self, question, solutions, *, config):  # type: ignore[no-untyped-def]
        if "(1)" in question and any(solutions):
            raise RuntimeError("scorer down")
        return super()._score(question, solutions, config=config)


def test_scoring_a_recorded_pool_later_equals_scoring_while_recording(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT, WRONG])
    scored_live, plain = tmp_path / "live.jsonl", tmp_path / "plain.jsonl"
    recording_prm = ScriptedPRM(default_p=0.4)
    _record(scored_live, model, prms={"prm": recording_prm})
    _record(plain, model, prms={"prm": ScriptedPRM(default_p=0.4)}, score_steps_with=[])
    assert not read_pools(plain).pools[0].samples[0].step_estimates
    later = tmp_path / "later.jsonl"
    other = ScriptedPRM(default_p=0.9, step_score=lambda step: 0.3)
    summary = score_pools(plain, later, {"prm": ScriptedPRM(default_p=0.1), "other": other},
                          progress=False)  # fmt: skip
    assert (summary.recorded, summary.already_recorded, summary.failed) == (3, 0, {})
    live, rescored = read_pools(scored_live), read_pools(later)
    assert rescored.header.prms == ["other", "prm"]
    assert rescored.header.settings["scored_steps"] == ["other", "prm"]
    for a, b in zip(live.pools, rescored.pools, strict=True):
        assert [s.step_estimates["prm"] for s in a.samples] == [
            s.step_estimates["prm"] for s in b.samples
        ]
        # the recorded question estimate (0.4) is kept; the new PRM's is added
        assert b.question_estimates["prm"].median == pytest.approx(0.4)
        assert b.question_estimates["other"].median == pytest.approx(0.9)
        assert [e.median for e in b.samples[0].step_estimates["other"]] == [0.3, 0.3]
        assert [s.text for s in a.samples] == [s.text for s in b.samples]
    # the new PRM saw exactly what the recording PRM saw
    assert other.calls[1] == recording_prm.calls[1]


def test_scoring_resumes_keeps_other_questions_when_one_fails_and_never_overwrites(
    tmp_path: Path,
) -> None:
    plain, later = tmp_path / "plain.jsonl", tmp_path / "later.jsonl"
    _record(plain, ScriptedChatModel(responses=[RIGHT]), score_steps_with=[])
    first = score_pools(plain, later, {"prm": _FailsOnOne()}, progress=False)
    assert first.recorded == 2 and list(first.failed) == ["q1"]
    assert "scorer down" in first.failed["q1"]
    again = score_pools(plain, later, {"prm": ScriptedPRM()}, progress=False)
    assert (again.recorded, again.already_recorded, again.failed) == (1, 2, {})
    assert sorted(p.id for p in read_pools(later).pools) == ["q0", "q1", "q2"]
    with pytest.raises(PoolMismatchError, match="prms"):
        score_pools(plain, later, {"judge": ScriptedPRM()}, progress=False)
    with pytest.raises(ConfigurationError, match="another file"):
        score_pools(plain, plain, {"prm": ScriptedPRM()}, progress=False)
    with pytest.raises(ConfigurationError, match="at least one PRM"):
        score_pools(plain, tmp_path / "none.jsonl", {}, progress=False)

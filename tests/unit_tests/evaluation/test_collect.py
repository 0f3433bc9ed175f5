"""Tests for langchain_adaptive.evaluation.collect: records, grading, resuming, async."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import Field, PrivateAttr

from langchain_adaptive.answers import STEP_JOINER
from langchain_adaptive.calibration._records import CalibrationRecord
from langchain_adaptive.errors import AdaptiveInputError, ConfigurationError, ModelError, PRMError
from langchain_adaptive.evaluation.collect import (
    QuestionTrajectories,
    acollect_calibration_data,
    collect_calibration_data,
    read_records,
    rescore_records,
    trajectories_path,
)
from langchain_adaptive.evaluation.datasets import Problem
from langchain_adaptive.inputs import FewShotExample
from langchain_adaptive.prm._base import PRMScores
from langchain_adaptive.results import SuccessEstimate
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedLLM, ScriptedPRM

RIGHT = "3 + 4 = 7.\n\nThe answer is 7."
WRONG = "3 + 4 = 8.\n\nThe answer is 8."
SHORT = "The answer is 7."
PROBLEM = Problem(id="q", question="What is 3 + 4?", gold="7")
SEQUENTIAL: RunnableConfig = {"max_concurrency": 1}
"""LangChain's batch then calls the model in order, so scripted responses land in order."""


class ArithmeticChat(BaseChatModel):
    """A policy whose replies depend only on the prompt and the sample index.

    Fresh questions get three kinds of solution in turn (right in two steps,
    wrong in two steps, right in three); a prefill is continued with the right
    or a wrong answer, chosen from the prefix and sample index. Runs therefore
    give the same records however calls are ordered, interleaved or resumed.
    Samples ``n`` natively (one call, like ChatLlamaCpp).
    """

    supports_n_samples: ClassVar[bool] = True
    fail_on_calls: set[int] = Field(default_factory=set)
    """0-based call numbers that raise RuntimeError."""
    delay: float = 0.0
    """Seconds each async call sleeps, so concurrent questions overlap."""
    calls: list[dict[str, Any]] = Field(default_factory=list)
    in_flight: set[str] = Field(default_factory=set)
    most_in_flight: int = 0
    generated_tokens: int = 0
    _counter: Any = PrivateAttr(default_factory=itertools.count)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "arithmetic-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            call = next(self._counter)
            self.calls.append({"messages": messages, **kwargs})
        if call in self.fail_on_calls:
            raise RuntimeError(f"scripted failure on call {call}")
        a, b = map(int, re.findall(r"\d+", str(messages[0].content))[:2])
        value = a + b
        prefix = str(messages[-1].content) if isinstance(messages[-1], AIMessage) else None
        generations = []
        for j in range(kwargs.get("n") or 1):
            if prefix is None:
                text = [
                    f"{a} + {b} = {value}.\n\nThe answer is {value}.",
                    f"{a} + {b} = {value + 1}.\n\nThe answer is {value + 1}.",
                    f"Let us add.\n\n{a} + {b} = {value}.\n\nThe answer is {value}.",
                ][j % 3]
            else:
                right = (len(prefix) + j) % 3 != 0
                text = f"The answer is {value if right else value - 1}."
            tokens = len(text.split())
            with self._lock:
                self.generated_tokens += tokens
            message = AIMessage(
                content=text,
                usage_metadata={"input_tokens": 5, "output_tokens": tokens, "total_tokens": 5},
            )
            generations.append(ChatGeneration(message=message))
        return ChatResult(generations=generations)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        question = str(messages[0].content)
        with self._lock:
            self.in_flight.add(question)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            await asyncio.sleep(self.delay)
            return self._generate(messages, stop, None, **kwargs)
        finally:
            with self._lock:
                self.in_flight.discard(question)


class FailingPRM(ScriptedPRM):
    """Fails (a foreign exception, so PRMError) on the ``fail_on``-th call, 0-based."""

    fail_on: int = 1
    _count: Any = PrivateAttr(default_factory=itertools.count)

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        if next(self._count) == self.fail_on:
            raise ValueError("the judge crashed")
        return super()._score(question, solutions, config=config)


class QuantilePRM(ScriptedPRM):
    """Returns quantile estimates without ``raw_score`` (or a chosen raw score)."""

    raw: float | None = None

    def _score(
        self, question: str, solutions: Sequence[Sequence[str]], *, config: RunnableConfig
    ) -> PRMScores:
        estimate = SuccessEstimate(quantiles={0.1: 0.2, 0.5: 0.3, 0.9: 0.6}, raw_score=self.raw)
        return [[estimate] * max(1, len(steps)) for steps in solutions]


def _problems(count: int) -> list[Problem]:
    return [
        Problem(id=f"p{i}", question=f"What is {i + 2} + {i + 5}?", gold=str(2 * i + 7))
        for i in range(count)
    ]


def _expected_keys(records: Sequence[CalibrationRecord]) -> set[tuple[str, int, int]]:
    keys = set()
    for record in records:
        keys.add((record.question_id, 0, 0))
        for k in range(1, record.num_steps + 1):
            keys.add((record.question_id, record.trajectory, k))
    return keys


# -- what is recorded ------------------------------------------------------------------


def test_records_cover_every_prefix_once(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT, WRONG, SHORT])
    out = tmp_path / "calib.jsonl"

    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=out, n_val=3, n_mc=2, config=SEQUENTIAL
    )

    assert [r.key for r in records] == [
        ("q", 0, 0),
        ("q", 0, 1),
        ("q", 0, 2),
        ("q", 1, 1),
        ("q", 1, 2),
        ("q", 2, 1),
    ]
    assert {r.key for r in records} == _expected_keys(records)
    assert [r.num_steps for r in records] == [2, 2, 2, 2, 2, 1]
    assert sorted(read_records(out), key=lambda r: r.key) == records  # all on disk
    assert all(r.k <= r.num_steps for r in records)


def test_question_alone_is_one_shared_record_pooling_the_trajectories(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT, WRONG, SHORT, SHORT, WRONG])
    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=2,
        config=SEQUENTIAL,
    )  # fmt: skip

    alone = [r for r in records if r.k == 0]
    assert len(alone) == 1 and alone[0].trajectory == 0 and alone[0].prefix == ""
    # Trajectories RIGHT, WRONG, SHORT (2 right) + rollouts SHORT, WRONG (1 right).
    assert (alone[0].successes, alone[0].trials) == (3, 5)
    assert alone[0].raw_score == 0.5  # ScriptedPRM's question default
    assert not alone[0].complete


def test_without_pooling_the_question_alone_has_n_mc_trials(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT, WRONG, SHORT, SHORT, WRONG])
    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=2,
        pool_trajectories=False, config=SEQUENTIAL,
    )  # fmt: skip

    alone = next(r for r in records if r.k == 0)
    assert (alone.successes, alone.trials) == (1, 2)


def test_whole_trajectories_take_their_own_grade(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=[RIGHT, WRONG, SHORT])
    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=2,
        config=SEQUENTIAL,
    )  # fmt: skip

    complete = {r.trajectory: r for r in records if r.complete}
    assert set(complete) == {0, 1, 2}
    assert all(r.k == r.num_steps and r.trials == 1 and r.tokens == 0 for r in complete.values())
    assert [complete[t].successes for t in range(3)] == [1, 0, 1]
    assert [complete[t].trajectory_correct for t in range(3)] == [True, False, True]
    assert complete[0].prefix == RIGHT
    partial = [r for r in records if r.k > 0 and not r.complete]
    assert partial and all(r.trials == 2 for r in partial)


def test_rollouts_continue_the_prefix_and_are_graded_with_it(tmp_path: Path) -> None:
    # The prefix already states the answer; the rollouts add nothing.
    stated = "The answer is 7.\n\nI double-checked it."
    model = ScriptedChatModel(responses=[stated, "", "", "", ""])
    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=1, n_mc=2,
        pool_trajectories=False, config=SEQUENTIAL,
    )  # fmt: skip

    prefix_record = next(r for r in records if r.k == 1)
    assert prefix_record.prefix == "The answer is 7."
    assert (prefix_record.successes, prefix_record.trials) == (2, 2)
    rollout_messages = model.calls[-1]["messages"]
    assert isinstance(rollout_messages[-1], AIMessage)
    assert rollout_messages[-1].content == "The answer is 7." + STEP_JOINER
    assert rollout_messages[:-1] == model.calls[0]["messages"]


def test_few_shot_examples_precede_the_question_in_trajectories_and_rollouts(
    tmp_path: Path,
) -> None:
    example = FewShotExample(question="What is 2 + 5?", solution="2 + 5 = 7\n\nThe answer is 7.")
    model = ScriptedChatModel(responses=[RIGHT, RIGHT, RIGHT, RIGHT, RIGHT])
    collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=1, n_mc=2,
        examples=[example], config=SEQUENTIAL,
    )  # fmt: skip

    for call in model.calls:
        human, shown, *_ = call["messages"]
        assert human.content.startswith("What is 2 + 5?")
        assert shown == AIMessage(example.solution)
        assert call["messages"][2].content.startswith(PROBLEM.question)


def test_sampling_settings_reach_the_model(tmp_path: Path) -> None:
    model = ScriptedChatModel(responses=["one two three four five six seven eight"])
    collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=1, n_mc=1,
        max_tokens=3, temperature=0.3, config=SEQUENTIAL,
    )  # fmt: skip

    assert all(c["max_tokens"] == 3 and c["temperature"] == 0.3 for c in model.calls)
    saved = QuestionTrajectories.model_validate_json(
        trajectories_path(tmp_path / "c.jsonl").read_text()
    )
    assert saved.trajectories[0].text == "one two three"
    assert saved.trajectories[0].output_tokens == 3


def test_native_n_models_draw_each_set_in_one_call(tmp_path: Path) -> None:
    model = ArithmeticChat()
    records = collect_calibration_data(
        model, ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=4
    )

    non_complete = [r for r in records if not r.complete]
    assert len(model.calls) == len(non_complete) + 1  # + the trajectories
    assert model.calls[0]["n"] == 3
    assert all(call["n"] == 4 for call in model.calls[1:])


def test_tokens_add_up_to_everything_generated(tmp_path: Path) -> None:
    model = ArithmeticChat()
    records = collect_calibration_data(
        model, ScriptedPRM(), _problems(2), out=tmp_path / "c.jsonl", n_val=3, n_mc=2
    )

    saved = [
        QuestionTrajectories.model_validate_json(line)
        for line in trajectories_path(tmp_path / "c.jsonl").read_text().splitlines()
    ]
    trajectory_tokens = sum(t.output_tokens for s in saved for t in s.trajectories)
    assert sum(r.tokens for r in records if r.k == 0) > trajectory_tokens > 0
    assert sum(r.tokens for r in records) == model.generated_tokens
    assert all(r.tokens == 0 for r in records if r.complete)


def test_max_steps_caps_the_prefixes(tmp_path: Path) -> None:
    model = ArithmeticChat()  # trajectory 2 has three steps
    prm = ScriptedPRM()
    records = collect_calibration_data(
        model, prm, [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=2, max_steps=2
    )

    third = [r for r in records if r.trajectory == 2]
    assert [r.k for r in third] == [1, 2]
    assert not any(r.complete for r in third)  # k = 2 is not the whole trajectory
    assert all(r.num_steps == 3 for r in third)
    assert max(len(steps) for steps in prm.calls[0][1]) == 2


def test_max_steps_zero_records_the_question_alone(tmp_path: Path) -> None:
    model, prm = ArithmeticChat(), ScriptedPRM()
    records = collect_calibration_data(
        model, prm, _problems(2), out=tmp_path / "c.jsonl", n_val=3, n_mc=2, max_steps=0
    )

    assert [(r.key, r.trials) for r in records] == [(("p0", 0, 0), 5), (("p1", 0, 0), 5)]
    assert len(model.calls) == 4  # trajectories and k = 0 rollouts, per question
    assert [solutions for _, solutions in prm.calls] == [[[]], [[]]]


def test_one_prm_call_per_question_with_the_question_alone_first(tmp_path: Path) -> None:
    prm = ScriptedPRM(step_score=lambda step: 0.9 if "= 7" in step else 0.2)
    records = collect_calibration_data(
        ArithmeticChat(), prm, [PROBLEM], out=tmp_path / "c.jsonl", n_val=3, n_mc=2
    )

    assert len(prm.calls) == 1
    question, solutions = prm.calls[0]
    assert question == "What is 3 + 4?"  # the question text, without the instruction
    assert solutions[0] == [] and len(solutions) == 4
    by_key = {r.key: r for r in records}
    assert by_key[("q", 0, 1)].raw_score == 0.9  # "3 + 4 = 7."
    assert by_key[("q", 1, 1)].raw_score == 0.2  # "3 + 4 = 8."


def test_raw_score_falls_back_to_the_median(tmp_path: Path) -> None:
    records = collect_calibration_data(
        ArithmeticChat(), QuantilePRM(), [PROBLEM], out=tmp_path / "c.jsonl", n_val=1, n_mc=1
    )
    assert {r.raw_score for r in records} == {0.3}


def test_a_raw_score_that_is_not_a_probability_is_a_prm_error(tmp_path: Path) -> None:
    with pytest.raises(PRMError, match="not a probability"):
        collect_calibration_data(
            ArithmeticChat(), QuantilePRM(raw=float("nan")), [PROBLEM],
            out=tmp_path / "c.jsonl", n_val=1, n_mc=1,
        )  # fmt: skip


def test_completion_llms_continue_the_prompt_text(tmp_path: Path) -> None:
    prompts: list[str] = []

    class RecordingLLM(ScriptedLLM):
        def _generate(self, prompts_in: list[str], *args: Any, **kwargs: Any) -> Any:
            prompts.extend(prompts_in)
            return super()._generate(prompts_in, *args, **kwargs)

    records = collect_calibration_data(
        RecordingLLM(responses=[RIGHT, SHORT]), ScriptedPRM(), [PROBLEM],
        out=tmp_path / "c.jsonl", n_val=1, n_mc=2,
    )  # fmt: skip

    assert [r.key for r in records] == [("q", 0, 0), ("q", 0, 1), ("q", 0, 2)]
    assert prompts[-1].endswith("\n\n3 + 4 = 7." + STEP_JOINER)
    assert prompts[-1].startswith("What is 3 + 4?")


# -- bad input -------------------------------------------------------------------------


def test_problems_without_gold_fail_before_any_work(tmp_path: Path) -> None:
    model = ArithmeticChat()
    problems = [PROBLEM, Problem(id="nogold", question="What is 1 + 1?")]
    out = tmp_path / "c.jsonl"

    with pytest.raises(AdaptiveInputError, match="nogold"):
        collect_calibration_data(model, ScriptedPRM(), problems, out=out)

    assert model.calls == [] and not out.exists()


def test_repeated_ids_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(AdaptiveInputError, match="repeats"):
        collect_calibration_data(
            ArithmeticChat(), ScriptedPRM(), [PROBLEM, PROBLEM], out=tmp_path / "c.jsonl"
        )


@pytest.mark.parametrize(
    ("setting", "value"),
    [("n_val", 0), ("n_mc", 0), ("max_steps", -1), ("max_tokens", 0), ("max_concurrency", 0)],
)
def test_settings_out_of_range_are_rejected(tmp_path: Path, setting: str, value: int) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        collect_calibration_data(
            ArithmeticChat(), ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl", **{setting: value}
        )


def test_a_model_that_is_not_a_language_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="BaseChatModel"):
        collect_calibration_data(object(), ScriptedPRM(), [PROBLEM], out=tmp_path / "c.jsonl")  # type: ignore[arg-type]


# -- failures and resuming -------------------------------------------------------------


def _run(out: Path, model: BaseChatModel, problems: list[Problem]) -> list[CalibrationRecord]:
    return collect_calibration_data(model, ScriptedPRM(), problems, out=out, n_val=3, n_mc=2)


def test_a_model_failure_keeps_what_was_written_and_a_rerun_resumes(tmp_path: Path) -> None:
    problems = _problems(3)
    reference = _run(tmp_path / "reference.jsonl", ArithmeticChat(), problems)

    out = tmp_path / "calib.jsonl"
    crashing = ArithmeticChat(fail_on_calls={9})  # midway through the second question
    with pytest.raises(ModelError, match="scripted failure"):
        _run(out, crashing, problems)
    kept = read_records(out)
    assert 0 < len(kept) < len(reference)
    assert {r.question_id for r in kept} == {"p0", "p1"}

    resumed_model = ArithmeticChat()
    resumed = _run(out, resumed_model, problems)

    assert resumed == reference
    assert read_records(out)[: len(kept)] == kept  # nothing rewritten
    assert len(read_records(out)) == len(reference)
    # Six calls a question (trajectories, k = 0, four prefixes); call 9 was p1's
    # fourth. The rerun draws p1's two remaining prefixes from its saved
    # trajectories and all of p2: nothing already written is computed again.
    missing = [r for r in reference if r.key not in {x.key for x in kept} and not r.complete]
    assert len(resumed_model.calls) == len(missing) + 1  # + p2's trajectories
    fresh = [c for c in resumed_model.calls if not isinstance(c["messages"][-1], AIMessage)]
    assert [str(c["messages"][0].content).split("?")[0] for c in fresh] == ["What is 4 + 7"] * 2


def test_a_finished_collection_reruns_without_a_call(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    first = _run(out, ArithmeticChat(), _problems(2))
    model, prm = ArithmeticChat(), ScriptedPRM()

    again = collect_calibration_data(model, prm, _problems(2), out=out, n_val=3, n_mc=2)

    assert again == first
    assert model.calls == [] and prm.calls == []


def test_a_prm_failure_is_a_prm_error_and_keeps_earlier_records(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    with pytest.raises(PRMError, match="the judge crashed"):
        collect_calibration_data(
            ArithmeticChat(), FailingPRM(fail_on=1), _problems(2), out=out, n_val=3, n_mc=2
        )

    kept = read_records(out)
    assert kept and {r.question_id for r in kept} == {"p0"}
    assert len(trajectories_path(out).read_text().splitlines()) == 2  # p1 was drawn


def test_a_truncated_last_line_is_skipped_with_a_warning_and_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    problems = _problems(2)
    reference = _run(tmp_path / "reference.jsonl", ArithmeticChat(), problems)
    out = tmp_path / "calib.jsonl"
    _run(out, ArithmeticChat(), problems)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:25])  # a crash mid-write

    with caplog.at_level(logging.WARNING):
        resumed = _run(out, ArithmeticChat(), problems)

    assert resumed == reference
    assert f"skipped 1 malformed line(s) (line {len(lines)})" in caplog.text
    text = out.read_text()
    assert text.endswith("\n") and lines[-1][:25] + "\n" in text  # kept, on its own line
    assert len(read_records(out)) == len(reference)


def test_malformed_lines_anywhere_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "c.jsonl"
    records = _run(out, ArithmeticChat(), _problems(1))
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0], "not json", *lines[1:], '{"question_id": "p0"}']) + "\n")

    with caplog.at_level(logging.WARNING):
        assert sorted(read_records(out), key=lambda r: r.key) == records
    assert f"skipped 2 malformed line(s) (line 2, {len(lines) + 2})" in caplog.text


def test_records_without_saved_trajectories_are_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "c.jsonl"
    first = _run(out, ArithmeticChat(), _problems(1))
    trajectories_path(out).unlink()
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:3]))  # p0 half done
    model = ArithmeticChat()

    with caplog.at_level(logging.WARNING):
        records = _run(out, model, _problems(2))

    # New trajectories for p0 would mix two samples under one key: p0 stays as it is.
    assert "'p0' has records but no trajectories" in caplog.text
    assert [r for r in records if r.question_id == "p0"] == [
        r for r in first if r.key in {x.key for x in read_records(out)}
    ]
    assert {r.question_id for r in records} == {"p0", "p1"}
    assert all("What is 3 + 6" in str(c["messages"][0].content) for c in model.calls)
    assert json.loads(trajectories_path(out).read_text())["question_id"] == "p1"


# -- concurrency -----------------------------------------------------------------------


def test_threads_give_the_same_records(tmp_path: Path) -> None:
    problems = _problems(4)
    sequential = _run(tmp_path / "a.jsonl", ArithmeticChat(), problems)
    threaded = collect_calibration_data(
        ArithmeticChat(), ScriptedPRM(), problems, out=tmp_path / "b.jsonl", n_val=3, n_mc=2,
        max_concurrency=3,
    )  # fmt: skip
    assert threaded == sequential


def test_a_thread_failure_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        collect_calibration_data(
            ArithmeticChat(fail_on_calls={3}), ScriptedPRM(), _problems(6),
            out=tmp_path / "c.jsonl", n_val=3, n_mc=2, max_concurrency=2,
        )  # fmt: skip


async def test_async_runs_questions_concurrently_with_the_same_records(tmp_path: Path) -> None:
    problems = _problems(4)
    sequential = _run(tmp_path / "a.jsonl", ArithmeticChat(), problems)
    model = ArithmeticChat(delay=0.01)

    records = await acollect_calibration_data(
        model, ScriptedPRM(), problems, out=tmp_path / "b.jsonl", n_val=3, n_mc=2,
        max_concurrency=2,
    )  # fmt: skip

    assert records == sequential
    assert model.most_in_flight == 2
    assert sorted(read_records(tmp_path / "b.jsonl"), key=lambda r: r.key) == sorted(
        sequential, key=lambda r: r.key
    )


async def test_async_failure_keeps_records_and_resumes(tmp_path: Path) -> None:
    problems = _problems(3)
    reference = _run(tmp_path / "reference.jsonl", ArithmeticChat(), problems)
    out = tmp_path / "c.jsonl"
    with pytest.raises(PRMError):
        await acollect_calibration_data(
            ArithmeticChat(), FailingPRM(fail_on=2), problems, out=out, n_val=3, n_mc=2,
            max_concurrency=2,
        )  # fmt: skip
    assert read_records(out)

    resumed = await acollect_calibration_data(
        ArithmeticChat(), ScriptedPRM(), problems, out=out, n_val=3, n_mc=2, max_concurrency=2
    )
    assert resumed == reference


def test_progress_bar_shows_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    _run(tmp_path / "c.jsonl", ArithmeticChat(), _problems(2))
    err = capsys.readouterr().err
    assert "2/2" in err and "tokens=" in err


def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "calib.jsonl"
    with (tmp_path / "calib.jsonl.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run is writing
        with pytest.raises(ConfigurationError, match="another collection run"):
            collect_calibration_data(
                ScriptedChatModel(responses=[RIGHT]), ScriptedPRM(), [PROBLEM], out=out,
                n_val=1, n_mc=1, config=SEQUENTIAL,
            )  # fmt: skip
    records = collect_calibration_data(
        ScriptedChatModel(responses=[RIGHT]), ScriptedPRM(), [PROBLEM], out=out,
        n_val=1, n_mc=1, config=SEQUENTIAL,
    )  # fmt: skip
    assert records  # once the other run let go, collection proceeds


# -- rescore_records ----------------------------------------------------------------------


def _record(k: int, prefix: str, raw: float = 0.5) -> CalibrationRecord:
    return CalibrationRecord(
        question_id="q", trajectory=0, k=k, num_steps=2, prefix=prefix, complete=k == 2,
        raw_score=raw, successes=k, trials=2, trajectory_correct=True,
    )  # fmt: skip


def test_rescore_records_keeps_labels_and_takes_the_new_prms_scores() -> None:
    records = [_record(0, ""), _record(1, "3 + 4 = 7."), _record(2, RIGHT)]
    prm = ScriptedPRM(question_p={PROBLEM.question: 0.3}, step_score=lambda s: len(s) / 100)
    rescored = rescore_records(records, {"q": PROBLEM.question}, prm)
    assert [r.raw_score for r in rescored] == [0.3, len("3 + 4 = 7.") / 100, 0.16]
    assert [r.model_copy(update={"raw_score": 0.5}) for r in rescored] == records
    assert prm.calls == [(PROBLEM.question, [[], ["3 + 4 = 7."], RIGHT.split(STEP_JOINER)])]


def test_rescore_records_names_a_question_it_cannot_find() -> None:
    with pytest.raises(ConfigurationError, match="'q'"):
        rescore_records([_record(0, "")], {"other": "What is 1 + 1?"}, ScriptedPRM())

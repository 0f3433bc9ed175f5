"""Issue 31: every failure found by the fault and bad-input campaign, kept as a test.

Each test names the issue's item. The models and PRMs are the scripted ones of
``fakes.py``; a model that hangs waits on an event for a bounded time, and is
released when the test ends.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from langchain_adaptive import AdaptiveReasoningRunnable, SuccessEstimate
from langchain_adaptive.answers import answers_match, group_answers, symbolic_cost_reason
from langchain_adaptive.calibration._base import Calibrator, IdentityCalibrator
from langchain_adaptive.errors import (
    AdaptiveError,
    AdaptiveInputError,
    AdaptiveTimeoutError,
    CalibrationError,
    CallbackHandlerError,
    ConfigurationError,
)
from langchain_adaptive.prm._base import PRMScores, ProcessRewardModel
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM

RIGHT = "7 + 8 = 15\n\nThe answer is 15."
WRONG = "7 + 8 = 16\n\nThe answer is 16."
HANG_LIMIT_S = 20.0
"""A hanging model gives up after this long, so no test can hang for ever."""


class HangingChatModel(ScriptedChatModel):
    """Answers its first ``answer_calls`` calls, then waits (bounded) until released."""

    answer_calls: int = 0
    release: Any = None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if len(self.calls) >= self.answer_calls:
            self.calls.append({"hung": True})
            self.release.wait(HANG_LIMIT_S)
        return super()._generate(messages, *args, **kwargs)


class IgnoresMaxTokens(ScriptedChatModel):
    """A model that drops ``max_tokens`` on the floor (as a misnamed keyword would)."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        kwargs.pop("max_tokens", None)
        return super()._generate(messages, *args, **kwargs)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let an abandoned model call finish


# -- 4. answer comparison is bounded in every thread ------------------------------------

TOWER = r"\boxed{9^{9^{9}}}"


def test_batch_with_a_power_tower_answer_returns() -> None:
    model = ScriptedChatModel(responses=[f"9^9^9 is big.\n\nThe answer is {TOWER}", RIGHT])
    reasoner = AdaptiveReasoningRunnable(
        model=model, strategy="majority_vote", max_samples=2, prm=None
    )
    questions = [{"question": "What is 7 + 8?", "gold": "x + 1"}] * 2
    results = reasoner.batch(questions, config={"max_concurrency": 2})
    assert [len(r.candidates) for r in results] == [2, 2]
    assert any(c.answer == "9^{9^{9}}" for r in results for c in r.candidates)
    assert all(c.correct is False for r in results for c in r.candidates)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("9^{9^{9}}", "power tower"),
        ("2**3**4", "power tower"),
        ("10^{99999999}", "exponent above"),
        ("(10!)!", "factorial"),
        ("x" * 2000, "longer than"),
        ("(" * 40 + "1" + ")" * 40, "nested"),
    ],
)
def test_costly_answers_are_refused_symbolic_work(answer: str, reason: str) -> None:
    assert reason in (symbolic_cost_reason(answer) or "")


@pytest.mark.parametrize("answer", [r"\frac{1}{2}", "2^{10}", r"\sqrt{2}", "x^2 + y^2", "10!"])
def test_ordinary_answers_still_get_symbolic_work(answer: str) -> None:
    assert symbolic_cost_reason(answer) is None


def test_symbolic_equivalence_still_holds_on_and_off_the_main_thread() -> None:
    pairs = [(r"\frac{1}{2}", "0.5"), (r"\sqrt{4}", "2"), ("2^{10}", "1024")]
    on_main = [answers_match(a, b) for a, b in pairs]
    off_main: list[bool] = []
    worker = threading.Thread(target=lambda: off_main.extend(answers_match(a, b) for a, b in pairs))
    worker.start()
    worker.join(120)
    assert on_main == off_main == [True, True, True]


ADVERSARIAL = st.one_of(
    st.builds(lambda a, b, c: f"{a}^{{{b}^{{{c}}}}}", *[st.integers(2, 99)] * 3),
    st.builds(lambda a, b: f"{a}^{{{b}}}", st.integers(2, 99), st.integers(10**5, 10**12)),
    st.builds(lambda n: "{" * n + "1" + "}" * n, st.integers(25, 3000)),
    st.builds(lambda n: "(" * n + "x" + ")" * n, st.integers(25, 3000)),
    st.builds(lambda n: f"{n}!", st.integers(10**5, 10**9)),
    st.builds(lambda c, n: c * n, st.sampled_from(["9", "x", "^", "{", "\\"]), st.just(1 << 20)),
    st.text(max_size=60),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=ADVERSARIAL, other=st.sampled_from(["3", "x + 1", r"\frac{1}{2}"]))
def test_fuzz_every_comparison_finishes_in_every_thread(answer: str, other: str) -> None:
    results: dict[str, Any] = {}

    def compare(where: str) -> None:
        start = time.monotonic()
        results[where] = (answers_match(other, answer), time.monotonic() - start)

    compare("main")
    worker = threading.Thread(target=compare, args=("thread",), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"answers_match hung off the main thread on {answer[:40]!r}"
    assert results["main"][0] == results["thread"][0]
    assert group_answers([answer, other, answer])[0] == 0


# -- 6. a deadline on sync and async invoke -----------------------------------------------


def test_sync_invoke_ends_at_its_deadline_keeping_the_samples(release: threading.Event) -> None:
    model = HangingChatModel(responses=[RIGHT, WRONG], answer_calls=2, release=release)
    reasoner = AdaptiveReasoningRunnable(
        model=model, prm=None, strategy="adaptive_consistency", timeout_s=0.5
    )
    with pytest.raises(AdaptiveTimeoutError) as raised:
        reasoner.invoke("What is 7 + 8?")
    error = raised.value
    assert isinstance(error, TimeoutError) and error.timeout_s == 0.5
    assert error.partial is not None
    assert [c.answer for c in error.partial.candidates] == ["15", "16"]
    assert "timeout_s=0.5" in str(error)


async def test_async_invoke_ends_at_its_deadline(release: threading.Event) -> None:
    model = HangingChatModel(responses=[RIGHT], answer_calls=1, release=release)
    reasoner = AdaptiveReasoningRunnable(
        model=model, prm=None, strategy="adaptive_consistency", timeout_s=0.5
    )
    with pytest.raises(AdaptiveTimeoutError) as raised:
        await reasoner.ainvoke("What is 7 + 8?")
    assert raised.value.partial is not None and len(raised.value.partial.candidates) == 1


def test_a_deadline_that_is_not_reached_changes_nothing() -> None:
    model = ScriptedChatModel(responses=[RIGHT])
    plain = AdaptiveReasoningRunnable(model=model, prm=ScriptedPRM(), max_samples=3)
    timed = plain.model_copy(update={"timeout_s": 30.0})
    assert timed.invoke("easy").answer == plain.invoke("easy").answer == "15"


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_timeout_must_be_a_positive_number(bad: float) -> None:
    with pytest.raises(ValidationError):
        AdaptiveReasoningRunnable(model=ScriptedChatModel(responses=[RIGHT]), timeout_s=bad)


# -- 8. a model that ignores max_tokens cannot overshoot the total cap ----------------------


def test_a_model_ignoring_max_tokens_is_cut_to_the_cap_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long = " ".join(["word"] * 300) + "\n\nThe answer is 15."
    reasoner = AdaptiveReasoningRunnable(
        model=IgnoresMaxTokens(responses=[long]),
        prm=None,
        strategy="majority_vote",
        max_samples=8,
        max_tokens_per_sample=20,
        max_total_tokens=170,
    )
    result = reasoner.invoke("What is 7 + 8?")
    budget = result.budget
    assert budget.generated_tokens <= 170
    assert all(c.usage.output_tokens <= 20 for c in result.candidates)
    assert budget.overshoot_tokens == sum(304 - 20 for _ in result.candidates)
    assert [w for w in result.warnings if "ignored its output cap" in w] != []
    assert sum("ignored its output cap" in r.getMessage() for r in caplog.records) == 1


# -- 9. a NaN score is the PRM's failure --------------------------------------------------


class NaNPRM(ProcessRewardModel):
    """Builds estimates without validation (``model_construct``): NaN slips through."""

    def _score(self, question: str, solutions: Any, *, config: RunnableConfig) -> PRMScores:
        nan = SuccessEstimate.model_construct(quantiles={0.1: math.nan, 0.5: math.nan})
        return [[SuccessEstimate.point(0.9)] if not s else [nan] * len(s) for s in solutions]


def test_nan_scores_fall_back_to_voting() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT, RIGHT, WRONG]),
        prm=NaNPRM(),
        strategy="best_of_n",
        max_samples=3,
        on_prm_error="vote",
    )
    result = reasoner.invoke("What is 7 + 8?")
    assert result.selection == "majority_vote" and result.answer == "15"
    assert any("PRM failed" in w and "non-finite" in w for w in result.warnings)


def test_nan_scores_raise_a_prm_error() -> None:
    from langchain_adaptive.errors import PRMError

    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT]), prm=NaNPRM(), strategy="best_of_n"
    )
    with pytest.raises(PRMError) as raised:
        reasoner.invoke("What is 7 + 8?")
    assert raised.value.partial is not None and raised.value.partial.candidates


# -- 10. a callback handler's failure has its own type -------------------------------------


class RaisesOn(BaseCallbackHandler):
    raise_error = True

    def __init__(self, event: str) -> None:
        self.event = event

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        if self.event == "chain_start":
            raise RuntimeError("handler bug at chain start")

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        if self.event == "model_start":
            raise RuntimeError("handler bug at model start")

    def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
        if self.event == "chain_end" and kwargs.get("parent_run_id") is None:
            raise RuntimeError("handler bug at chain end")


@pytest.mark.parametrize("event", ["chain_start", "model_start", "chain_end"])
@pytest.mark.parametrize("use_async", [False, True])
async def test_handler_errors_are_callback_handler_errors(event: str, use_async: bool) -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT]), prm=ScriptedPRM(), max_samples=2
    )
    config: RunnableConfig = {"callbacks": [RaisesOn(event)]}
    with pytest.raises(CallbackHandlerError) as raised:
        if use_async:
            await reasoner.ainvoke("easy", config=config)
        else:
            reasoner.invoke("easy", config=config)
    assert isinstance(raised.value.__cause__, RuntimeError)
    if event == "chain_end":  # the run had finished: the whole result is kept
        assert raised.value.partial is not None and raised.value.partial.answer == "15"


# -- 11. an error while the result is assembled keeps every sample -----------------------


def test_a_failing_answers_match_keeps_the_samples() -> None:
    def broken(a: str, b: str) -> bool:
        raise ZeroDivisionError("equivalence bug")

    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT, WRONG]),
        prm=None,
        strategy="majority_vote",
        max_samples=2,
        answers_match=broken,
    )
    with pytest.raises(AdaptiveError) as raised:
        reasoner.invoke({"question": "What is 7 + 8?", "gold": "15"})
    assert "equivalence bug" in str(raised.value)
    assert raised.value.partial is not None
    assert [c.answer for c in raised.value.partial.candidates] == ["15", "16"]


# -- 12. nested calibrator JSON --------------------------------------------------------------


def test_deeply_nested_calibrator_json_is_a_calibration_error(tmp_path: Path) -> None:
    directory = IdentityCalibrator().save(tmp_path / "cal")
    config = directory / "calibrator.json"
    config.write_text('{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CalibrationError, match="nested too deeply"):
        Calibrator.load(directory)
    config.write_text(json.dumps({"kind": "identity", "x": 1}))  # guards the test: a plain
    with pytest.raises(CalibrationError, match="lacks required keys"):  # error still reads
        Calibrator.load(directory)


# -- 13. bad input gets a typed error ---------------------------------------------------


def test_a_lone_surrogate_in_a_question_is_an_input_error() -> None:
    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT]), prm=ScriptedPRM()
    )
    question = b"What is 7 + 8?\xff".decode("utf-8", "surrogateescape")
    for value in (question, {"question": question}, {"question": "7 + 8?", "gold": question}):
        with pytest.raises(AdaptiveInputError, match="lone surrogate"):
            reasoner.invoke(value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", math.inf),
        ("temperature", math.nan),
        ("step_delimiter", ""),
        ("step_delimiter", r"\n*"),
        ("step_delimiter", "("),
        ("max_tokens_kwarg", ""),
        ("max_tokens_kwarg", "max tokens"),
    ],
)
def test_settings_that_were_accepted_silently_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        AdaptiveReasoningRunnable(model=ScriptedChatModel(responses=[RIGHT]), **{field: value})


@pytest.mark.parametrize("total", [math.nan, 2.5, "4", True])
@pytest.mark.parametrize("use_async", [False, True])
async def test_total_samples_must_be_a_whole_number(total: Any, use_async: bool) -> None:
    prm = ScriptedPRM()
    reasoner = AdaptiveReasoningRunnable(model=ScriptedChatModel(responses=[RIGHT]), prm=prm)
    with pytest.raises(ConfigurationError, match="whole number"):
        if use_async:
            await reasoner.abatch(["a?", "b?"], total_samples=total)
        else:
            reasoner.batch(["a?", "b?"], total_samples=total)
    assert prm.calls == []  # refused before any call


def test_a_whole_numpy_total_is_accepted() -> None:
    import numpy as np

    reasoner = AdaptiveReasoningRunnable(
        model=ScriptedChatModel(responses=[RIGHT]), prm=ScriptedPRM()
    )
    results = reasoner.batch(["a?", "b?"], total_samples=np.int64(2))
    assert sum(r.budget.samples_used for r in results) == 2


def test_a_comparison_that_ran_out_of_time_is_not_remembered(monkeypatch: Any) -> None:
    """Under load a worker may not be free in time: "not equal" now, but a later call decides."""
    from langchain_adaptive import answers

    busy = answers._WorkerPool(size=0)  # never a free worker
    monkeypatch.setattr(answers, "_WORKERS", busy)
    monkeypatch.setattr(answers, "COMPARE_DEADLINE_S", 0.05)
    answers._decided_equal.cache_clear()
    verdicts: list[bool] = []

    def compare() -> None:
        verdicts.append(answers_match("\\sqrt{4}", "2"))

    thread = threading.Thread(target=compare)
    thread.start()
    thread.join(timeout=30)
    assert verdicts == [False]
    monkeypatch.setattr(answers, "_WORKERS", answers._WorkerPool(size=1))
    monkeypatch.setattr(answers, "COMPARE_DEADLINE_S", 30.0)
    try:
        thread = threading.Thread(target=compare)
        thread.start()
        thread.join(timeout=120)
        assert verdicts == [False, True]  # decided now: the timeout was not cached
    finally:
        answers._WORKERS.close()


def test_the_agent_middleware_tags_a_question_with_a_lone_surrogate() -> None:
    pytest.importorskip("langchain.agents")
    from langchain_adaptive.integrations.langgraph._middleware import _tagged

    config = _tagged({}, "adaptive_consistency", "What is \udc80 2 + 2?", "policy")
    assert len(config["metadata"]["adaptive_question_id"]) == 16

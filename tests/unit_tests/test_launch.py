"""Issue 34: ``launch="eager"`` starts a plan's samples at once and cancels the rest.

The models here stream one word a chunk after a scripted delay per sample, so
which samples finish first is fixed by the script: the plan must see them in
that order, stop early, and the samples still running must be cancelled
(their streams closed) with the words they streamed counted as cancelled tokens.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.errors import AdaptiveTimeoutError, ModelError
from langchain_adaptive.strategies import AdaptiveConsistency, EarlyStoppingConsistency
from tests.unit_tests.fakes import ScriptedPRM

FAST, SLOW = 0.02, 0.05
"""Seconds a word: a fast sample (5 words) ends at 0.1 s, a slow one (44) at 2.2 s."""


class DelayedChatModel(BaseChatModel):
    """Call ``i`` streams ``responses[i]`` a word at a time, ``delays[i]`` seconds a word.

    Records which calls finished and which were closed part-way (cancelled),
    and how many words each had sent by then. Reports usage on its last chunk.
    """

    responses: list[str]
    delays: list[float]
    fail_on: set[int] = Field(default_factory=set)
    sync_only: bool = False
    _counter: Any = PrivateAttr(default_factory=itertools.count)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    sent: dict[int, int] = Field(default_factory=dict)
    finished: set[int] = Field(default_factory=set)
    closed: set[int] = Field(default_factory=set)

    @property
    def _llm_type(self) -> str:
        return "delayed-chat"

    def _start(self) -> tuple[int, list[str], float]:
        with self._lock:
            call = next(self._counter)
        words = self.responses[call % len(self.responses)].split(" ")
        return call, words, self.delays[call % len(self.delays)]

    def _chunk(self, call: int, words: list[str], i: int) -> ChatGenerationChunk:
        self.sent[call] = i + 1
        last = i == len(words) - 1
        text = words[i] if i == 0 else " " + words[i]
        usage = {"input_tokens": 3, "output_tokens": len(words), "total_tokens": 3 + len(words)}
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=text,
                usage_metadata=usage if last else None,  # type: ignore[arg-type]
                response_metadata={"finish_reason": "stop"} if last else {},
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, words, delay = self._start()
        time.sleep(delay * len(words))
        self.sent[call] = len(words)
        self.finished.add(call)
        usage = {"input_tokens": 3, "output_tokens": len(words), "total_tokens": 3 + len(words)}
        message = AIMessage(
            content=" ".join(words),
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata={"finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call, words, delay = self._start()
        try:
            for i in range(len(words)):
                time.sleep(delay)
                if call in self.fail_on and i == len(words) - 1:
                    raise RuntimeError(f"scripted failure on call {call}")
                yield self._chunk(call, words, i)
        except GeneratorExit:
            self.closed.add(call)
            raise
        self.finished.add(call)

    async def _astream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.sync_only:  # as BaseChatModel does for a model with only _stream
            async for chunk in super()._astream(messages, stop, **kwargs):
                yield chunk
            return
        call, words, delay = self._start()
        try:
            for i in range(len(words)):
                await asyncio.sleep(delay)
                if call in self.fail_on and i == len(words) - 1:
                    raise RuntimeError(f"scripted failure on call {call}")
                yield self._chunk(call, words, i)
        except (asyncio.CancelledError, GeneratorExit):
            self.closed.add(call)
            raise
        self.finished.add(call)


def answer(value: int, words: int = 1) -> str:
    return " ".join(["step"] * words + ["The", "answer", "is", f"{value}."])


def model(**overrides: Any) -> DelayedChatModel:
    """Eight samples: four fast ones (calls 1, 3, 5, 7) and four slow ones of 40 words."""
    responses = [answer(15, 40 if i % 2 == 0 else 1) for i in range(8)]
    delays = [SLOW if i % 2 == 0 else FAST for i in range(8)]
    return DelayedChatModel(responses=responses, delays=delays, **overrides)


def reasoner(chat: BaseChatModel, **overrides: Any) -> AdaptiveReasoningRunnable:
    settings: dict[str, Any] = {
        "model": chat,
        "strategy": AdaptiveConsistency(),  # four agreeing answers settle it (P = 0.97)
        "max_samples": 8,
        "max_tokens_per_sample": 64,
        "launch": "eager",
    }
    return AdaptiveReasoningRunnable(**{**settings, **overrides})


def check_stopped_early(result: Any, chat: DelayedChatModel, *, closes: bool = True) -> None:
    budget = result.budget
    assert result.stop_reason == "consensus"
    assert budget.samples_used == 4
    assert budget.cancelled_samples == 4
    # the plan saw the four fast samples, in the order they finished, not launch order
    assert all(c.usage.output_tokens == 5 for c in result.candidates)
    assert chat.finished >= {1, 3, 5, 7}
    # the slow ones stopped part-way (their streams closed where the model streams
    # natively; a sync stream is simply no longer pulled), and every word they sent is counted
    assert not chat.finished & {0, 2, 4, 6}
    if closes:
        assert chat.closed == {0, 2, 4, 6}
    streamed = sum(chat.sent.get(call, 0) for call in (0, 2, 4, 6))
    assert budget.cancelled_tokens == streamed
    assert 0 < budget.cancelled_tokens < 4 * 44
    assert budget.generated_tokens == 4 * 5


def test_async_eager_stops_early_and_cancels_the_rest() -> None:
    chat = model()
    result = asyncio.run(reasoner(chat).ainvoke("What is 7 + 8?"))
    check_stopped_early(result, chat)


def test_sync_eager_stops_early_and_cancels_the_rest() -> None:
    chat = model()
    result = reasoner(chat).invoke("What is 7 + 8?")
    check_stopped_early(result, chat)


def test_a_model_with_only_a_sync_stream_is_cancelled_between_tokens() -> None:
    chat = model(sync_only=True)
    result = reasoner(chat).invoke("What is 7 + 8?")
    check_stopped_early(result, chat, closes=False)
    streamed = sum(chat.sent.get(call, 0) for call in (0, 2, 4, 6))
    time.sleep(3 * SLOW)
    # a word already being made in its worker thread still ends, then the stream stops
    assert sum(chat.sent.get(call, 0) for call in (0, 2, 4, 6)) <= streamed + 4


def test_rounds_is_the_default_and_draws_in_launch_order() -> None:
    chat = model()
    result = reasoner(chat, launch="rounds").invoke("What is 7 + 8?")
    assert result.budget.cancelled_samples == 0
    assert result.budget.samples_used == 4
    assert chat.finished == {0, 1, 2, 3} and not chat.closed
    assert [c.usage.output_tokens for c in result.candidates] == [44, 5, 44, 5]


def test_a_plan_that_uses_every_sample_cancels_nothing() -> None:
    responses = [answer(15 + i % 2) for i in range(8)]  # a tie: never settled
    chat = DelayedChatModel(responses=responses, delays=[FAST] * 8)
    result = reasoner(chat).invoke("What is 7 + 8?")
    assert result.stop_reason == "max_samples"
    assert result.budget.samples_used == 8
    assert result.budget.cancelled_samples == 0 and result.budget.cancelled_tokens == 0


def test_esc_takes_a_window_from_the_launch() -> None:
    chat = model()
    strategy = EarlyStoppingConsistency(window=4)
    result = reasoner(chat, strategy=strategy).invoke("What is 7 + 8?")
    assert result.stop_reason == "consensus"
    assert result.budget.samples_used == 4
    assert result.budget.cancelled_samples == 4


def test_token_limit_holds_by_reservation() -> None:
    chat = model()
    # 3 samples' worth at 64 tokens each: three are launched, and more only once the
    # kept samples' real lengths leave room for another worst case
    result = reasoner(chat, max_total_tokens=3 * 64).invoke("What is 7 + 8?")
    budget = result.budget
    assert budget.generated_tokens + budget.cancelled_tokens <= 3 * 64
    assert len(chat.sent) < 8


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failed_sample_keeps_what_arrived_and_cancels_the_rest(mode: str) -> None:
    chat = model(fail_on={5})
    chat.delays[5] = 1.5 * FAST  # fails after 1, 3 and 7 finished, before consensus
    runnable = reasoner(chat)
    with pytest.raises(ModelError) as caught:
        if mode == "sync":
            runnable.invoke("What is 7 + 8?")
        else:
            asyncio.run(runnable.ainvoke("What is 7 + 8?"))
    partial = caught.value.partial
    assert partial is not None
    assert partial.budget.samples_used == 3
    assert partial.budget.cancelled_samples == 4
    assert chat.closed == {0, 2, 4, 6}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_deadline_cancels_the_launch(mode: str) -> None:
    chat = DelayedChatModel(responses=[answer(15, 200)], delays=[SLOW])
    runnable = reasoner(chat, timeout_s=0.3, max_tokens_per_sample=256)
    with pytest.raises(AdaptiveTimeoutError) as caught:
        if mode == "sync":
            runnable.invoke("What is 7 + 8?")
        else:
            asyncio.run(runnable.ainvoke("What is 7 + 8?"))
    partial = caught.value.partial
    assert partial is not None
    assert partial.budget.cancelled_samples == 8
    assert partial.budget.cancelled_tokens == sum(chat.sent.values())


def test_batch_and_abatch_launch_per_question() -> None:
    chat = DelayedChatModel(
        responses=[answer(15, 40 if i % 2 == 0 else 1) for i in range(16)],
        delays=[SLOW if i % 2 == 0 else FAST for i in range(16)],
    )
    results = reasoner(chat).batch(["What is 7 + 8?", "What is 9 + 6?"])
    for result in results:
        assert result.stop_reason == "consensus"
        assert result.budget.samples_used == 4
    results = asyncio.run(reasoner(model()).abatch(["What is 7 + 8?"]))
    assert results[0].budget.cancelled_samples == 4


def test_astream_events_reports_the_taken_samples() -> None:
    chat = model()

    async def run() -> list[dict[str, Any]]:
        return [e async for e in reasoner(chat).astream_events("What is 7 + 8?", version="v2")]

    events = asyncio.run(run())
    generated = [e for e in events if e["name"] == "adaptive_candidate_generated"]
    assert len(generated) == 4
    (end,) = [e for e in events if e["event"] == "on_chain_end" and e["name"] == reasoner_name()]
    assert end["data"]["output"].budget.cancelled_samples == 4


def reasoner_name() -> str:
    return AdaptiveReasoningRunnable(model=model(), strategy="adaptive_consistency").get_name()


def test_sequential_ias_scores_every_round_while_the_rest_run() -> None:
    chat = model()
    prm = ScriptedPRM(default_p=0.6)
    runnable = reasoner(chat, prm=prm, strategy="sequential_ias", target_confidence=0.9)
    result = runnable.invoke("What is 7 + 8?")
    assert result.stop_reason == "adaptive_budget"
    assert result.budget.samples_used < 8
    assert result.budget.cancelled_samples == 8 - result.budget.samples_used
    assert all(c.step_estimates is not None for c in result.candidates)


@pytest.mark.parametrize("strategy", ["beam_search", "particle_filtering", "revise"])
def test_strategies_that_draw_steps_or_revisions_say_eager_does_not_apply(
    strategy: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_adaptive import _driver
    from tests.unit_tests.test_beam_search import StepChatModel, arithmetic_steps, right_steps
    from tests.unit_tests.test_revise import RevisingModel

    def run(launch: str) -> Any:
        chat: BaseChatModel = (
            RevisingModel() if strategy == "revise" else StepChatModel(next_step=arithmetic_steps)
        )
        prm = ScriptedPRM() if strategy == "revise" else ScriptedPRM(step_score=right_steps)
        runnable = reasoner(chat, prm=prm, strategy=strategy, launch=launch)
        return runnable.invoke("What is (3 + 4) * 2?")

    monkeypatch.setattr(_driver, "_EAGER_UNUSED_LOGGED", set())  # logged once a process
    with caplog.at_level("WARNING", logger="langchain_adaptive"):
        eager = [run("eager"), run("eager")]
    rounds = run("rounds")
    for result in eager:
        (warning,) = [w for w in result.warnings if "launch='eager'" in w]
        assert f"no effect on strategy {strategy!r}" in warning
        assert "adaptive_consistency" in warning  # and names those it applies to
        # it ran as rounds does: same samples, same answer, nothing launched or cancelled
        assert result.answer == rounds.answer
        assert [c.text for c in result.candidates] == [c.text for c in rounds.candidates]
        assert result.budget.cancelled_samples == 0
    assert [r.message for r in caplog.records].count(f"AdaptiveReasoningRunnable: {warning}") == 1
    assert not [w for w in rounds.warnings if "launch=" in w]
    assert not [w for w in reasoner(model()).invoke("What is 7 + 8?").warnings if "launch=" in w]


def test_live_runs_eager_and_counts_the_cancelled_tokens() -> None:
    from langchain_adaptive.evaluation import live_policy, run_live
    from langchain_adaptive.evaluation.datasets import Problem

    problem = Problem(id="a", question="What is 7 + 8?", gold="15")
    policy = live_policy("adaptive_consistency", prms={}, max_samples=8, target_confidence=0.9)

    def run(launch: Literal["rounds", "eager"]) -> Any:
        return run_live(
            model(), [problem], [policy], source="delayed", max_tokens_per_sample=64,
            replicates=5, progress=False, launch=launch,
        )  # fmt: skip

    eager, rounds = run("eager"), run("rounds")
    (outcome,) = eager.per_question[policy.policy.name]
    assert outcome.samples == 4 and outcome.correct
    # four fast samples of 5 words taken, and the slow ones' words until they were cancelled
    assert 4 * 5 < outcome.tokens < 4 * 5 + 4 * 44
    assert any("launch=eager" in note for note in eager.notes)
    (outcome,) = rounds.per_question[policy.policy.name]
    assert outcome.tokens == 2 * 5 + 2 * 44  # launch order: slow, fast, slow, fast
    assert not any("launch=eager" in note for note in rounds.notes)

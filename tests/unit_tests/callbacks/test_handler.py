"""The runnable's events reach handlers and ``astream_events`` as typed, grouped models."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

import pytest
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableLambda

from langchain_adaptive import AdaptiveCallbackHandler, AsyncAdaptiveCallbackHandler, BestOfN
from langchain_adaptive.callbacks import (
    AdaptiveFinished,
    BeamsPruned,
    BudgetDecided,
    CandidateGenerated,
    CandidateScored,
    EarlyStop,
    StepScored,
    is_adaptive_event,
    parse_event,
)
from langchain_adaptive.cli import ProgressPrinter
from langchain_adaptive.errors import CallbackHandlerError
from tests.tracing import RunCollector, walk
from tests.unit_tests.callbacks.recording import RIGHT, Recorder, reasoner
from tests.unit_tests.fakes import ScriptedChatModel


def test_ias_reports_its_budget_candidates_scores_and_finish_in_order() -> None:
    recorder = Recorder()
    result = reasoner().invoke("easy", config={"callbacks": [recorder]})
    assert recorder.methods() == [
        "on_budget_decided",
        "on_candidate_generated",
        "on_candidate_generated",
        "on_candidate_scored",
        "on_candidate_scored",
        "on_adaptive_finished",
    ]
    events = [call[1] for call in recorder.calls]
    budget = events[0]
    assert isinstance(budget, BudgetDecided)
    assert (budget.strategy, budget.n, budget.reason) == ("adaptive_best_of_n", 2, "ias")
    assert budget.estimate is not None and budget.estimate.lower == 0.9
    assert budget.target_confidence == 0.99
    generated = [e for e in events if isinstance(e, CandidateGenerated)]
    assert [(g.index, g.answer, g.finish_reason) for g in generated] == [
        (c.index, c.answer, c.finish_reason) for c in result.candidates
    ]
    assert sum(g.output_tokens for g in generated) == result.budget.generated_tokens
    scored = [e for e in events if isinstance(e, CandidateScored)]
    assert [s.score for s in scored] == [c.score for c in result.candidates]
    assert scored[0].step_estimates == [e.median for e in result.candidates[0].step_estimates]
    finished = events[-1]
    assert isinstance(finished, AdaptiveFinished)
    assert finished.samples_used == result.budget.samples_used == 2
    assert finished.decided_samples == result.budget.decided_samples
    assert finished.generated_tokens == result.budget.generated_tokens
    assert finished.max_samples == result.budget.max_samples
    assert finished.stop_reason == result.stop_reason == "adaptive_budget"
    assert finished.confidence == result.confidence


def test_events_belong_to_the_runnable_run_and_group_by_question_and_strategy() -> None:
    recorder, tracer = Recorder(), RunCollector()
    outer = RunnableLambda(lambda q: q) | reasoner()
    outer.invoke({"question": "easy", "id": "q-17"}, config={"callbacks": [recorder, tracer]})
    root = tracer.root()
    (adaptive,) = [r for r in walk(root) if r.name == "AdaptiveReasoningRunnable"]
    for _, _, run_id, parent_run_id, tags, metadata in recorder.calls:
        assert run_id == adaptive.id and parent_run_id == root.id
        assert "adaptive:adaptive_best_of_n" in tags
        assert metadata["adaptive_strategy"] == "adaptive_best_of_n"
        assert metadata["adaptive_question_id"] == "q-17"
    children = walk(adaptive)[1:]
    assert {r.run_type for r in children} >= {"llm", "prm"}
    for child in children:
        assert "adaptive:adaptive_best_of_n" in child.tags
        assert child.extra["metadata"]["adaptive_question_id"] == "q-17"
    roles = {r.run_type: r.extra["metadata"]["adaptive_role"] for r in children}
    assert roles == {"llm": "policy", "prm": "prm"}


def test_question_id_without_an_id_is_a_stable_hash_of_the_question() -> None:
    first, second = Recorder(), Recorder()
    reasoner().invoke("easy", config={"callbacks": [first]})
    reasoner().invoke({"question": "easy"}, config={"callbacks": [second]})
    ids = {call[5]["adaptive_question_id"] for call in first.calls + second.calls}
    assert ids == {hashlib.sha256(b"easy").hexdigest()[:16]}


def test_sequential_strategies_report_each_round_and_their_early_stop() -> None:
    recorder = Recorder()
    runnable = reasoner(model=ScriptedChatModel(responses=[RIGHT]), strategy="esc", prm=None)
    result = runnable.invoke("q", config={"callbacks": [recorder]})
    assert result.stop_reason == "consensus" and result.budget.samples_used == 5
    budgets = [c[1] for c in recorder.calls if c[0] == "on_budget_decided"]
    assert [(b.n, b.reason, b.estimate) for b in budgets] == [(5, "sequential_round", None)]
    (stop,) = [c[1] for c in recorder.calls if c[0] == "on_early_stop"]
    assert isinstance(stop, EarlyStop)
    assert (stop.reason, stop.samples_used) == ("consensus", 5)
    assert recorder.methods()[-2:] == ["on_early_stop", "on_adaptive_finished"]


def test_capped_fixed_budget_says_so() -> None:
    recorder = Recorder()
    reasoner(strategy=BestOfN(n=9), max_samples=3).invoke("q", config={"callbacks": [recorder]})
    (budget,) = [c[1] for c in recorder.calls if c[0] == "on_budget_decided"]
    assert (budget.n, budget.reason) == (3, "capped")
    assert not any(c[0] == "on_early_stop" for c in recorder.calls)


def test_samples_of_a_failed_run_are_reported_before_the_error() -> None:
    recorder = Recorder()
    model = ScriptedChatModel(responses=[RIGHT], fail_on_calls={1})
    with pytest.raises(Exception) as raised:
        reasoner(model=model, strategy=BestOfN(n=3)).invoke("q", config={"callbacks": [recorder]})
    partial = raised.value.partial  # type: ignore[attr-defined]
    generated = [c[1].index for c in recorder.calls if c[0] == "on_candidate_generated"]
    assert generated == [c.index for c in partial.candidates] and len(generated) == 2
    assert "on_adaptive_finished" not in recorder.methods()


async def test_astream_events_carry_payloads_that_parse_into_the_models() -> None:
    events = [e async for e in reasoner().astream_events("easy", version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    names = [e["name"] for e in custom]
    assert names[0] == "adaptive_budget_decided" and names[-1] == "adaptive_finished"
    assert names.count("adaptive_candidate_generated") == 2
    parsed = [parse_event(e["name"], e["data"]) for e in custom]
    assert isinstance(parsed[-1], AdaptiveFinished) and parsed[-1].samples_used == 2
    assert all("adaptive:adaptive_best_of_n" in e["tags"] for e in custom)
    assert all(e["metadata"]["adaptive_strategy"] == "adaptive_best_of_n" for e in custom)


async def test_async_handler_gets_the_same_typed_events_under_ainvoke() -> None:
    class Collect(AsyncAdaptiveCallbackHandler):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        async def on_adaptive_event(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
            self.seen.append(event)
            await super().on_adaptive_event(event, run_id=run_id, **kwargs)

        async def on_adaptive_finished(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
            self.finished = event

    handler, recorder = Collect(), Recorder()
    result = await reasoner().ainvoke("easy", config={"callbacks": [handler, recorder]})
    assert handler.seen == [call[1] for call in recorder.calls]
    assert handler.finished.samples_used == result.budget.samples_used


def test_redact_events_leaves_answers_out_of_every_payload() -> None:
    recorder = Recorder()
    reasoner(redact_events=True).invoke("easy", config={"callbacks": [recorder]})
    generated = [c[1] for c in recorder.calls if c[0] == "on_candidate_generated"]
    assert len(generated) == 2 and all(g.answer is None for g in generated)
    assert all("15" not in str(c[1].payload()) for c in recorder.calls)


def test_foreign_events_are_ignored_and_beam_events_from_other_code_are_typed() -> None:
    def beam_step(x: str, config: Any) -> str:
        dispatch_custom_event("progress", {"done": 1}, config=config)
        step = StepScored(beam_id=1, step_index=0, lower=0.2, median=0.4, finished=False)
        dispatch_custom_event(step.event_name, step.payload(), config=config)
        pruned = {"step_index": 0, "kept": [1], "dropped": [0], "k": 1, "m": 2}
        dispatch_custom_event("adaptive_beams_pruned", pruned, config=config)
        return x

    recorder = Recorder()
    RunnableLambda(beam_step).invoke("x", config={"callbacks": [recorder]})
    assert recorder.methods() == ["on_step_scored", "on_beams_pruned"]
    assert recorder.calls[1][1] == BeamsPruned(step_index=0, kept=[1], dropped=[0], k=1, m=2)
    assert not is_adaptive_event("progress")


async def test_async_dispatch_reaches_the_sync_handler() -> None:
    async def emit(x: str, config: Any) -> str:
        await adispatch_custom_event(
            "adaptive_early_stop", {"reason": "consensus", "samples_used": 3}, config=config
        )
        return x

    recorder = Recorder()
    await RunnableLambda(emit).ainvoke("x", config={"callbacks": [recorder]})
    assert recorder.calls[0][1] == EarlyStop(reason="consensus", samples_used=3)


class Exploding(AdaptiveCallbackHandler):
    def on_candidate_generated(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("handler bug")


def test_a_raising_handler_is_logged_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="langchain_core.callbacks.manager"):
        result = reasoner().invoke("easy", config={"callbacks": [Exploding(), recorder]})
    assert result.answer == "15" and result.budget.samples_used == 2
    assert "on_adaptive_finished" in recorder.methods()  # other handlers still hear everything
    errors = [r for r in caplog.records if "handler bug" in r.getMessage()]
    assert len(errors) == 2  # one per candidate


async def test_a_raising_handler_does_not_break_ainvoke_either(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="langchain_core.callbacks.manager"):
        result = await reasoner().ainvoke("easy", config={"callbacks": [Exploding()]})
    assert result.budget.samples_used == 2
    assert any("handler bug" in r.getMessage() for r in caplog.records)


def test_a_malformed_adaptive_payload_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def emit(x: str, config: Any) -> str:
        dispatch_custom_event("adaptive_finished", {"strategy": "x"}, config=config)
        return x

    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="langchain_core.callbacks.manager"):
        assert RunnableLambda(emit).invoke("x", config={"callbacks": [recorder]}) == "x"
    assert recorder.calls == []
    assert any("validation error" in r.getMessage() for r in caplog.records)


def test_a_handler_that_asks_to_raise_stops_the_run_keeping_its_samples() -> None:
    class Strict(Exploding):
        raise_error = True

    with pytest.raises(CallbackHandlerError) as raised:  # the handler failed, not the model
        reasoner().invoke("easy", config={"callbacks": [Strict()]})
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert raised.value.partial is not None and len(raised.value.partial.candidates) == 2


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_strict_handler_failing_at_the_finish_keeps_the_whole_result(
    use_async: bool,
) -> None:
    class StrictAtFinish(AdaptiveCallbackHandler):
        raise_error = True

        def on_adaptive_finished(self, event, *, run_id, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("finish bug")

    config: Any = {"callbacks": [StrictAtFinish()]}
    with pytest.raises(CallbackHandlerError) as raised:
        if use_async:
            await reasoner().ainvoke("easy", config=config)
        else:
            reasoner().invoke("easy", config=config)
    assert isinstance(raised.value.__cause__, RuntimeError)
    partial = raised.value.partial
    assert partial is not None and partial.answer == "15" and partial.confidence is not None
    assert partial.stop_reason == "adaptive_budget" and len(partial.candidates) == 2


def test_the_cli_progress_printer_reads_the_typed_events() -> None:
    stream = io.StringIO()
    reasoner().invoke("easy", config={"callbacks": [ProgressPrinter(stream)]})
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "question success estimate p = 0.900",
        "adaptive_best_of_n: drawing 2 sample(s)",
        "stopped (adaptive_budget) after 2 sample(s)",
    ]

"""AdaptiveUsageTracker: exact totals across threaded batch and abatch, PRM work apart, cost."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from langchain_adaptive import AdaptiveResult, AdaptiveUsageTracker, BestOfN, LLMJudgePRM
from langchain_adaptive.callbacks import ModelPrice, UsageSnapshot
from tests.unit_tests.callbacks.recording import RIGHT, WRONG, reasoner
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedLLM
from tests.unit_tests.prm.test_judge import ScriptedJudge

QUESTIONS = ["easy", "hard", "easy again", "hard again", "easy", "hard"]


def expected(results: list[AdaptiveResult]) -> dict[str, int]:
    return {
        "questions": len(results),
        "samples": sum(r.budget.samples_used for r in results),
        "generated_tokens": sum(r.budget.generated_tokens for r in results),
        "prompt_tokens": sum(r.budget.prompt_tokens for r in results),
        "model_calls": sum(r.budget.model_calls for r in results),
        "prm_calls": sum(r.budget.prm_calls for r in results),
    }


def totals(snapshot: UsageSnapshot) -> dict[str, int]:
    return {key: getattr(snapshot, key) for key in expected([])}


def test_threaded_batch_totals_equal_the_sum_of_budget_reports() -> None:
    tracker = AdaptiveUsageTracker()
    results = reasoner().batch(QUESTIONS, config={"callbacks": [tracker], "max_concurrency": 6})
    snapshot = tracker.snapshot()
    assert totals(snapshot) == expected(results)
    assert snapshot.samples > len(QUESTIONS)  # hard questions draw several samples
    assert snapshot.cost is None and snapshot.unpriced_models == ["ScriptedChatModel"]


async def test_abatch_totals_equal_the_sum_of_budget_reports() -> None:
    tracker = AdaptiveUsageTracker()
    runnable = reasoner()
    results = await runnable.abatch(
        QUESTIONS, config={"callbacks": [tracker], "max_concurrency": 6}
    )
    results += [await runnable.ainvoke("hard", config={"callbacks": [tracker]})]
    assert totals(tracker.snapshot()) == expected(results)


class CountingJudge(ScriptedJudge):
    """A logprob judge that also reports ``usage_metadata`` (one token a word)."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        result = super()._generate(messages, *args, **kwargs)
        prompt = sum(len(m.text.split()) for m in messages)
        result.generations[0].message.usage_metadata = {
            "input_tokens": prompt,
            "output_tokens": 1,
            "total_tokens": prompt + 1,
        }
        return result


def test_prm_model_calls_are_counted_apart_from_sampling() -> None:
    judge_model = CountingJudge()
    judge = LLMJudgePRM(model=judge_model)
    tracker = AdaptiveUsageTracker()
    runnable = reasoner(prm=judge, strategy=BestOfN(n=2, selection="prm"))
    result = runnable.invoke("q", config={"callbacks": [tracker]})
    snapshot = tracker.snapshot()
    assert totals(snapshot) == expected([result])
    assert snapshot.prm_model_calls == len(judge_model.calls) > 0
    assert snapshot.prm_input_tokens == result.budget.prm_input_tokens > 0
    assert snapshot.prm_output_tokens == result.budget.prm_output_tokens
    assert snapshot.by_model["CountingJudge"].calls == snapshot.prm_model_calls


def test_completion_llm_usage_comes_from_llm_output() -> None:
    tracker = AdaptiveUsageTracker()
    model = ScriptedLLM(responses=[RIGHT, WRONG], report_usage=True)
    result = reasoner(model=model, strategy=BestOfN(n=3)).invoke(
        "q", config={"callbacks": [tracker]}
    )
    assert totals(tracker.snapshot()) == expected([result])
    assert result.budget.generated_tokens > 0 and not result.budget.tokens_estimated
    assert tracker.snapshot().by_model["ScriptedLLM"].unreported_calls == 0


def test_calls_without_reported_usage_are_counted_not_guessed() -> None:
    """A model that reports no usage leaves the token counts a lower bound, and says so."""
    tracker = AdaptiveUsageTracker()
    model = ScriptedLLM(responses=[RIGHT, WRONG])
    reasoner(model=model, strategy=BestOfN(n=3)).invoke("q", config={"callbacks": [tracker]})
    snapshot = tracker.snapshot()
    assert snapshot.model_calls > 0 and snapshot.generated_tokens == 0
    assert snapshot.unreported_calls == snapshot.model_calls
    assert snapshot.by_model["ScriptedLLM"].unreported_calls == snapshot.model_calls


def test_prices_give_a_cost_per_model_and_in_total() -> None:
    tracker = AdaptiveUsageTracker(
        prices={"ScriptedChatModel": {"input_per_million": 1.0, "output_per_million": 4.0}}
    )
    result = reasoner().invoke("hard", config={"callbacks": [tracker]})
    snapshot = tracker.snapshot()
    want = (result.budget.prompt_tokens * 1.0 + result.budget.generated_tokens * 4.0) / 1e6
    assert snapshot.cost == pytest.approx(want) and want > 0
    assert snapshot.by_model["ScriptedChatModel"].cost == pytest.approx(want)
    assert snapshot.unpriced_models == []


def test_model_price_validates_and_reset_starts_over() -> None:
    with pytest.raises(ValueError):
        ModelPrice(input_per_million=-1.0)
    tracker = AdaptiveUsageTracker()
    reasoner().invoke("easy", config={"callbacks": [tracker]})
    assert tracker.snapshot().questions == 1
    tracker.reset()
    assert tracker.snapshot() == UsageSnapshot()


def test_model_calls_outside_adaptive_runs_are_not_counted() -> None:
    tracker = AdaptiveUsageTracker()
    ScriptedChatModel(responses=["hi"]).invoke("hello", config={"callbacks": [tracker]})
    assert tracker.snapshot() == UsageSnapshot()

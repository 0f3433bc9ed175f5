"""AdaptiveReasoningRunnable on the real bundled SmolLM2 through llama.cpp."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")


from langchain_adaptive import AdaptiveReasoningRunnable, AdaptiveResult
from langchain_adaptive.budget import ias_sample_count
from langchain_adaptive.errors import ContextLengthExceededError
from langchain_adaptive.integrations.llamacpp import default_reasoner
from tests.tracing import RunCollector, run_usage, walk

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

EASY = "What is 2 + 3?"
HARD = (
    "How many ordered triples (a, b, c) of positive integers satisfy a * b * c = 1000 "
    "and gcd(a, b, c) = 1?"
)


@pytest.fixture(scope="module")
def reasoner() -> AdaptiveReasoningRunnable:
    return default_reasoner(
        seed=7, max_samples=8, max_tokens_per_sample=64, target_confidence=0.9, prm="judge"
    )


def test_invoke_answers_with_an_adaptive_budget(reasoner: AdaptiveReasoningRunnable) -> None:
    result = reasoner.invoke({"question": EASY, "gold": "5"})
    assert isinstance(result, AdaptiveResult)
    estimate = result.question_estimate
    assert estimate is not None and 0.0 < estimate.lower < 1.0
    expected = min(ias_sample_count(estimate.lower, 0.9), 8)
    assert result.budget.decided_samples == expected == result.budget.samples_used
    assert result.budget.generated_tokens > 0 and not result.budget.tokens_estimated
    assert result.budget.model_calls == 1  # n samples in one call: the prompt is evaluated once
    assert result.budget.prm_model_calls == 1 and result.budget.prm_input_tokens > 0
    assert all(c.usage.output_tokens <= 64 for c in result.candidates)
    assert result.correct is not None


def test_easy_question_gets_fewer_samples_than_hard(reasoner: AdaptiveReasoningRunnable) -> None:
    assert reasoner.prm is not None
    easy_p = reasoner.prm.estimate_question(EASY).lower
    hard_p = reasoner.prm.estimate_question(HARD).lower
    assert easy_p > hard_p  # the judge rates the sum easier than the counting problem
    easy, hard = reasoner.invoke(EASY), reasoner.invoke(HARD)
    assert easy.budget.samples_used == min(8, ias_sample_count(easy.question_estimate.lower, 0.9))
    assert hard.budget.samples_used == min(8, ias_sample_count(hard.question_estimate.lower, 0.9))
    assert easy.budget.samples_used < hard.budget.samples_used


def test_batch_of_four_does_not_crash(reasoner: AdaptiveReasoningRunnable) -> None:
    questions = ["What is 1 + 1?", "What is 3 + 4?", "What is 6 - 2?", "What is 2 * 3?"]
    results = reasoner.batch(questions, config={"max_concurrency": 4})
    assert [r.question for r in results] == questions
    assert all(r.budget.samples_used >= 1 for r in results)


async def test_ainvoke_and_astream_events_show_child_runs(
    reasoner: AdaptiveReasoningRunnable,
) -> None:
    result = await reasoner.ainvoke(EASY)
    assert result.budget.samples_used >= 1
    events = [e async for e in reasoner.astream_events(EASY, version="v2")]
    seen = {(e["event"], e["name"]) for e in events}
    assert ("on_chain_start", "AdaptiveReasoningRunnable") in seen
    assert ("on_prm_start", "LLMJudgePRM") in seen
    assert ("on_chat_model_end", "ChatLlamaCpp") in seen
    assert ("on_custom_event", "adaptive_budget_decided") in seen
    root = next(e["run_id"] for e in events if e["event"] == "on_chain_start")
    model_starts = [e for e in events if e["event"] == "on_chat_model_start"]
    assert all(root in e["parent_ids"] for e in model_starts)


def test_usage_equals_the_sum_over_child_runs(reasoner: AdaptiveReasoningRunnable) -> None:
    tracer = RunCollector()
    result = reasoner.invoke(EASY, config={"callbacks": [tracer]})
    root = tracer.root()
    policy = [r for r in root.child_runs if r.run_type == "llm"]
    judged = [r for prm in root.child_runs if prm.run_type == "prm" for r in walk(prm)[1:]]
    assert sum(run_usage(r)[1] for r in policy) == result.budget.generated_tokens
    assert sum(run_usage(r)[0] for r in policy) == result.budget.prompt_tokens
    assert sum(run_usage(r)[0] for r in judged) == result.budget.prm_input_tokens
    assert len(judged) == result.budget.prm_model_calls


def test_question_longer_than_the_context(reasoner: AdaptiveReasoningRunnable) -> None:
    small = default_reasoner(n_ctx=128, max_samples=2, prm="judge")
    with pytest.raises(ContextLengthExceededError) as caught:
        small.invoke("What is 1 + 1? " * 60)
    assert caught.value.partial is not None and caught.value.partial.candidates == []


def test_cli_ask_json() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_adaptive.cli",
            "ask",
            EASY,
            "--json",
            "--max-samples",
            "3",
            "--max-tokens",
            "48",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = AdaptiveResult.model_validate(json.loads(completed.stdout))
    assert 1 <= result.budget.samples_used <= 3
    assert "drawing" in completed.stderr  # progress went to stderr, not stdout


def test_cli_reports_typed_errors() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "langchain_adaptive.cli", "ask", "   "],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    assert "EmptyQuestionError" in completed.stderr

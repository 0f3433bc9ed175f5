"""Callbacks on the real bundled SmolLM2: the usage tracker and trace agree with the result."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveUsageTracker, JsonlTraceWriter
from langchain_adaptive.callbacks import AdaptiveFinished, BudgetDecided, read_trace
from langchain_adaptive.integrations.llamacpp import default_reasoner

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]


def test_tracker_and_trace_match_the_budget_report(tmp_path: Path) -> None:
    reasoner = default_reasoner(
        seed=3, max_samples=3, max_tokens_per_sample=16, target_confidence=0.9, prm="judge"
    )
    tracker, path = AdaptiveUsageTracker(), tmp_path / "trace.jsonl"
    result = reasoner.invoke(
        {"question": "What is 2 + 3?", "id": "sum"},
        config={"callbacks": [tracker, JsonlTraceWriter(path, redact=True)]},
    )
    budget, usage = result.budget, tracker.snapshot()
    assert (usage.questions, usage.samples) == (1, budget.samples_used)
    assert usage.generated_tokens == budget.generated_tokens > 0
    assert usage.prompt_tokens == budget.prompt_tokens > 0
    assert usage.model_calls == budget.model_calls
    assert usage.prm_calls == budget.prm_calls >= 1
    assert usage.prm_model_calls == budget.prm_model_calls
    assert usage.prm_input_tokens == budget.prm_input_tokens > 0
    assert usage.prm_output_tokens == budget.prm_output_tokens
    (model,) = usage.by_model.values()  # one loaded model samples and judges
    assert model.calls == budget.model_calls + budget.prm_model_calls

    records = read_trace(path)
    assert {r.metadata["adaptive_question_id"] for r in records} == {"sum"}
    decided = records[0].parsed()
    assert isinstance(decided, BudgetDecided) and decided.estimate is not None
    assert decided.estimate.lower == result.question_estimate.lower
    finished = records[-1].parsed()
    assert isinstance(finished, AdaptiveFinished)
    assert (finished.samples_used, finished.generated_tokens) == (
        budget.samples_used,
        budget.generated_tokens,
    )
    generated = [r for r in records if r.event == "adaptive_candidate_generated"]
    assert len(generated) == budget.samples_used
    assert all(r.data["answer"] is None for r in generated)  # redacted

